"""The GPU kit's benchmark pieces: synthetic JPEG data, the train-step contestants, and how one is timed.

`gpu_bench.py` (the kit's commands) is the reader's entry point; the contestants and the FLOP count are
described in its docstring.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import numpy as np
import torch


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------------- data


def write_jpegs(n: int, size_range: tuple[int, int], seed: int = 0, unique: int = 512):
    """n photo-like JPEGs (smooth colour fields + grain, q90): (bytes, caption) pairs; decode cost like real photos.

    At most `unique` distinct images are rendered, then repeated (decoding costs the same; rendering is slow).
    """
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    words = ["red", "green", "blue", "large", "small", "round", "square", "striped", "dog", "cat", "car", "tree"]
    rendered: list[bytes] = []
    for i in range(n):
        if i >= unique:
            yield rendered[i % unique], f"a photo of item {i}"
            continue
        h, w = (int(v) for v in rng.integers(*size_range, size=2))
        base = rng.integers(0, 255, size=(4, 4, 3)).astype(np.uint8)
        img = Image.fromarray(base).resize((w, h), Image.BICUBIC)
        arr = np.asarray(img, dtype=np.int16) + rng.integers(-12, 12, size=(h, w, 3))
        buf = io.BytesIO()
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
        rendered.append(buf.getvalue())
        yield rendered[-1], "a photo of a " + " ".join(rng.choice(words, size=3)) + f" number {i}"


def write_shards(root: Path, n_shards: int, per_shard: int, size_range: tuple[int, int]) -> list[str]:
    """img2dataset-style webdataset shards (KEY.jpg + KEY.txt)."""
    import webdataset as wds

    root.mkdir(parents=True, exist_ok=True)
    samples = write_jpegs(n_shards * per_shard, size_range)
    urls = []
    for s in range(n_shards):
        path = root / f"{s:05d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for j in range(per_shard):
                jpg, txt = next(samples)
                sink.write({"__key__": f"{s:05d}{j:04d}", "jpg": jpg, "txt": txt})
        urls.append(str(path))
    return urls


# ---------------------------------------------------------------------------------------------------- train


class Contestant:
    """One way of stepping a CLIP model: `step(images, tokens)` runs forward, loss, backward and the optimiser."""

    name = ""

    def step(self, images: torch.Tensor, tokens: torch.Tensor) -> None:
        raise NotImplementedError


class Ours(Contestant):
    """The training loop's engine and loss (`build_engine`, `build_loss`), one optimiser step per batch."""

    def __init__(self, model_name: str, state: dict, batch: int, device: torch.device, strategy: str, stage: int = 2,
                 ds_overrides: dict | None = None):  # fmt: skip
        from components.train.config import TrainConfig
        from components.train.engine import build_engine
        from components.train.loop import _setup_distributed, build_loss, build_model
        from infra.deepspeed_config import deepspeed_config

        self.name = f"ours ({f'DeepSpeed ZeRO-{stage}' if strategy == 'deepspeed' else 'DDP engine'})"
        cfg = TrainConfig(model=model_name, batch_size=batch, steps=10**6, warmup=10, precision="bf16", strategy=strategy,
                          zero_stage=stage, use_gpu=device.type == "cuda", workers=1,
                          cpus_per_worker=os.cpu_count() or 1)  # fmt: skip
        _setup_distributed(cfg)  # a 1-rank NCCL (gloo on CPU) group for DeepSpeed, as the loop makes one
        model = build_model(cfg)
        model.load_state_dict(state)
        ds = deepspeed_config(stage, "bf16", batch, 1, cfg.grad_clip) if strategy == "deepspeed" else None
        for key, value in (ds_overrides or {}).items():  # one level deep: {"zero_optimization": {...}} merges
            ds[key] = {**ds[key], **value} if isinstance(value, dict) and isinstance(ds.get(key), dict) else value
        self.engine = build_engine(model, cfg, device, ds)
        self.loss_fn = build_loss(cfg)

    def step(self, images: torch.Tensor, tokens: torch.Tensor) -> None:
        self.engine.train_step([(images, tokens)], self.loss_fn)


class OpenClip(Contestant):
    """open_clip's model and ClipLoss with the same weights, stepped like open_clip_train (amp_bf16, clip 1.0)."""

    name = "open_clip"

    def __init__(self, model_name: str, state: dict, device: torch.device):
        import open_clip

        if model_name not in open_clip.list_models():
            from clip_core.config import CONFIG_DIR

            open_clip.add_model_config(str(CONFIG_DIR / f"{model_name}.json"))
        self.model = open_clip.create_model(model_name, pretrained=None)
        self.model.load_state_dict(state)
        self.model.to(device).train()
        self.loss = open_clip.loss.ClipLoss()
        self.device = device
        # open_clip_train.main: gains/biases/embeddings without weight decay, torch AdamW with its defaults
        exclude = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n  # noqa: E731
        named = list(self.model.named_parameters())
        groups = [{"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
                  {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": 0.1}]  # fmt: skip
        self.opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.98), eps=1e-6)

    def step(self, images: torch.Tensor, tokens: torch.Tensor) -> None:
        import math

        self.opt.zero_grad()
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            img, txt, scale = self.model(images, tokens)
            loss = self.loss(img, txt, scale)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0, norm_type=2.0)
        self.opt.step()
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, math.log(100))


def count_step_flops(model_name: str, batch: int, device: torch.device) -> float:
    """FLOPs of one forward + backward of clip_core's model at `batch` (FlopCounterMode; see the docstring)."""
    from torch.utils.flop_counter import FlopCounterMode

    import clip_core

    model = clip_core.create_model(model_name).to(device)
    images, tokens = synthetic_batch(model.cfg, batch, device)
    with FlopCounterMode(display=False) as counter, torch.autocast(device.type, dtype=torch.bfloat16):
        img, txt, scale = model(images, tokens)
        (scale * (img @ txt.T)).float().logsumexp(1).mean().backward()
    return float(counter.get_total_flops())


def synthetic_batch(cfg, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    size = cfg.vision_cfg.image_size
    images = torch.randn(batch, 3, size, size, generator=g)
    t = cfg.text_cfg
    tokens = torch.randint(1, t.vocab_size - 1, (batch, t.context_length), generator=g)
    tokens[:, 20:] = 0
    tokens[:, 19] = t.vocab_size - 1  # EOT: the highest id, where the text tower pools
    return images.to(device), tokens.to(device)


def build_contestant(who: str, model_name: str, state: dict, batch: int, device: torch.device) -> Contestant:
    if who == "open_clip":
        return OpenClip(model_name, state, device)
    return Ours(model_name, state, batch, device, who)


def time_contestant(make, batches, warmup: int, steps: int, batch: int, device: torch.device) -> dict:
    """Build, warm up, then time `steps` steps; peak memory is the growth over what was allocated before building."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    c = make()
    for _ in range(warmup):
        c.step(*next(batches))
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        c.step(*next(batches))
    sync(device)
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() - base) / 2**30 if device.type == "cuda" else float("nan")
    del c
    return {"samples_per_s": batch * steps / dt, "peak_mem_gib": peak}
