"""The per-worker training function Ray Train runs: resume, then an explicit loop of virtual epochs.

`config` (a plain dict, so it crosses process and machine boundaries) carries:
    train            TrainConfig as a dict
    shards           list of shard URLs (already expanded)
    storage_path     fsspec URL for checkpoints/, metrics.jsonl and model/
    tokenizer_json   the HF tokenizer JSON text; tokenizer_context_length its context length
    ds_config        DeepSpeed config dict (built by infra; None for ddp)
    exclude_keys     optional list of sample keys to skip (the audit's dedup)
    keep_keys        optional list of the only sample keys to train on (the CLIP-score filter); None = all
    resume_key       optional {"code", "shards", "data", "init"} fingerprints stored with each checkpoint (see CheckpointStore)
    init_model       optional model directory URL whose weights a fresh run starts from (train.init_from: the
                     champion, a model directory or an imported checkpoint); a resumed run's checkpoint overrides them
    fault            optional test hook {"rank", "step", "flag"}: that rank exits hard at that step
                     once (the flag file records that it happened)
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

import clip_core

from .checkpoint import CheckpointStore, put_dir
from .config import TrainConfig
from .data import StreamSpec, build_loader
from .engine import build_engine
from .init import build_model, load_init_weights
from .metrics import MetricsLog, in_ray_session, memory_stats
from .zeroshot import zero_shot_top1


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Train on this worker until `steps`; rank 0 writes metrics, checkpoints and the final model."""
    cfg = TrainConfig(**config["train"])
    rank, world, device = _setup_distributed(cfg)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    tokenizer = load_tokenizer(config["tokenizer_json"], config["tokenizer_context_length"])
    model = build_model(cfg)
    if config.get("init_model"):
        load_init_weights(model, config["init_model"])
    lock_towers(model, cfg)  # before the optimiser: locked parameters get no optimiser state
    engine = build_engine(model, cfg, device, config.get("ds_config"))
    loss_fn = build_loss(cfg)
    train_tf = clip_core.image_transform(engine.module.image_size, is_train=True)
    eval_tf = clip_core.image_transform(engine.module.image_size, is_train=False)

    store = CheckpointStore(config["storage_path"])
    step = resume(engine, store, rank, world)
    resumed_from = step
    mlog = MetricsLog(config["storage_path"], rank, cfg.steps, step, cfg.tensorboard)
    global_batch = cfg.batch_size * cfg.accum_steps * world
    window = {"loss": 0.0, "n": 0, "t": 0.0, "wait": 0.0, "scale": float("nan")}
    last_eval: float | None = None
    recent_loss = float("nan")  # mean loss of the last logged window: the keep-best metric without eval

    exclude = frozenset(config.get("exclude_keys") or ())
    keep = frozenset(config["keep_keys"]) if config.get("keep_keys") is not None else None
    while step < cfg.steps:
        epoch = step // cfg.ckpt_every  # a virtual epoch ends at each checkpoint: the resume points
        spec = StreamSpec(list(config["shards"]), cfg.seed, epoch, rank, world, exclude, cfg.resampled, keep)
        batches = build_loader(spec, train_tf, tokenizer, cfg.batch_size, cfg.num_data_workers, cfg.shuffle_buffer)
        epoch_end = min((epoch + 1) * cfg.ckpt_every, cfg.steps)
        while step < epoch_end:
            t0 = time.perf_counter()
            micro = []
            for _ in range(cfg.accum_steps):
                tw = time.perf_counter()
                images, tokens = next(batches)
                window["wait"] += time.perf_counter() - tw
                micro.append((images.to(device), tokens.to(device)))
            # accum_mode contrastive: one loss over all micro-batches (global batch = batch*accum*world)
            window["loss"] += engine.train_step(micro, _recording(loss_fn, window))
            del micro
            step += 1
            window["n"] += 1
            window["t"] += time.perf_counter() - t0
            mlog.advance()
            _maybe_fault(config.get("fault"), rank, step)
            if cfg.eval_every and step % cfg.eval_every == 0 and rank == 0 and getattr(engine, "stage", 0) < 3:
                last_eval = zero_shot_top1(engine.module, tokenizer, eval_tf, cfg.eval_dataset, device)
            if step % cfg.log_every == 0 or step == cfg.steps:
                record = {
                    "step": step,
                    "epoch": epoch,
                    "loss": window["loss"] / window["n"],
                    "lr": engine.lr(),
                    "logit_scale": window["scale"],
                    "grad_norm": engine.last_grad_norm,
                    "samples_per_s": global_batch * window["n"] / window["t"],
                    "data_wait_frac": window["wait"] / window["t"],
                    **memory_stats(device),
                }
                if last_eval is not None:
                    record["zeroshot_top1"] = last_eval
                if resumed_from:
                    record["resumed_from"] = resumed_from
                mlog.log(record)
                recent_loss = record["loss"]
                window.update(loss=0.0, n=0, t=0.0, wait=0.0)
        del batches  # stops this epoch's loader workers
        metric = (last_eval, True) if last_eval is not None else (recent_loss, False)
        save(engine, store, cfg, config, rank, step, metric)

    mlog.close()
    sd = engine.export_state_dict()  # every rank: a collective under ZeRO-3
    if rank == 0:
        export_model(sd, engine.module.cfg, config, f"{config['storage_path'].rstrip('/')}/model")
    _barrier()
    return {"step": step, "loss": recent_loss, "zeroshot_top1": last_eval}


def _setup_distributed(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """Rank, world size and device; a single process outside Ray gets a 1-rank group (DeepSpeed needs one)."""
    if not dist.is_initialized() and cfg.strategy == "deepspeed":
        for k, v in {"LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}.items():
            os.environ.setdefault(k, v)
        store = dist.HashStore()
        dist.init_process_group("nccl" if cfg.use_gpu else "gloo", store=store, rank=0, world_size=1)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if cfg.use_gpu:
        if in_ray_session():  # Ray maps CUDA_VISIBLE_DEVICES per worker; it knows which index is ours
            import ray.train.torch

            device = ray.train.torch.get_device()
        else:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, cfg.cpus_per_worker))
    return rank, world, device


def load_tokenizer(tokenizer_json: str, context_length: int) -> clip_core.Tokenizer:
    """The tokenizer from its JSON text (shipped inside the config, so remote workers need no shared disk)."""
    from tokenizers import Tokenizer as HFTokenizer

    return clip_core.Tokenizer(HFTokenizer.from_str(tokenizer_json), context_length)


def lock_towers(model: clip_core.CLIP, cfg: TrainConfig) -> None:
    """train.lock_image / lock_text: frozen parameters (requires_grad False) the optimiser never sees."""
    if cfg.lock_image:
        model.lock_image_tower(cfg.lock_image_unlocked_groups, cfg.lock_image_freeze_bn_stats)
    if cfg.lock_text:
        model.lock_text_tower(cfg.lock_text_unlocked_layers)


def build_loss(cfg: TrainConfig):
    """features -> scalar loss, computed in fp32 whatever the autocast/engine dtype."""
    if cfg.loss == "siglip":
        siglip = clip_core.SigLipLoss()
        return lambda img, txt, scale, bias: siglip(img.float(), txt.float(), scale.float(), bias.float())
    clip = clip_core.ClipLoss(local_loss=cfg.local_loss, gather_with_grad=cfg.gather_with_grad)
    return lambda img, txt, scale, *_: clip(img.float(), txt.float(), scale.float())


def _recording(loss_fn, window: dict):
    def fn(img, txt, scale, *rest):
        window["scale"] = float(scale.detach())
        return loss_fn(img, txt, scale, *rest)

    return fn


def _maybe_fault(fault: dict | None, rank: int, step: int) -> None:
    """Test hook: exit this process hard, once, to exercise FailureConfig restarts."""
    if fault and rank == fault["rank"] and step == fault["step"] and not os.path.exists(fault["flag"]):
        Path(fault["flag"]).write_text(f"rank {rank} killed at step {step}\n")
        os._exit(1)


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": json.dumps(random.getstate()),
        "numpy": json.dumps([np_state[0], np_state[1].tolist(), *np_state[2:]]),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    npv = json.loads(state["numpy"])
    np.random.set_state((npv[0], np.array(npv[1], dtype=np.uint32), *npv[2:]))


def save(engine, store: CheckpointStore, cfg: TrainConfig, config: dict, rank: int, step: int, metric: tuple) -> None:
    """Every rank stages its files; rank 0 adds the model export, commits the manifest and prunes."""
    with tempfile.TemporaryDirectory(prefix="clip-ckpt-") as tmp:
        local = Path(tmp)
        engine.state_to(local, rank)
        torch.save(_rng_state(), local / f"rng_rank{rank}.pt")
        sd = engine.export_state_dict()  # a collective under ZeRO-3
        if rank == 0:
            _write_model(sd, engine.module.cfg, config, local)
            world = dist.get_world_size() if dist.is_initialized() else 1
            meta = {"step": step, "data_epoch": step // cfg.ckpt_every, "world_size": world, "config": config["train"],
                    "resume_key": config.get("resume_key")}  # fmt: skip
            (local / "train_meta.json").write_text(json.dumps(meta, indent=2))
        store.upload(local, step)
    _barrier()
    if rank == 0:
        value, higher = metric
        value = None if value is None or math.isnan(value) else value
        store.commit(step, {"metric": value, "higher_is_better": higher, "strategy": cfg.strategy})
        store.prune(cfg.keep_last)
    _barrier()


def resume(engine, store: CheckpointStore, rank: int, world: int) -> int:
    """Load the newest checkpoint that verifies (rank 0 picks, all ranks load); 0 when there is none."""
    choice = [None]
    if rank == 0:
        info = store.latest_good()
        choice = [info]
    if world > 1:
        dist.broadcast_object_list(choice, src=0)
    info = choice[0]
    if info is None:
        return 0
    with tempfile.TemporaryDirectory(prefix="clip-resume-") as tmp:
        local = store.download(info, tmp)
        engine.state_from(local)
        rng = local / f"rng_rank{rank}.pt"
        if rng.exists():
            _set_rng_state(torch.load(rng, weights_only=True))
    if rank == 0:
        print(f"resumed from {info.url} (step {info.step})", flush=True)
    return info.step


def _write_model(sd: dict[str, torch.Tensor], model_cfg: clip_core.CLIPConfig, config: dict, local: Path) -> None:
    # clip_core.save_checkpoint reads only .state_dict() and .cfg: a stand-in avoids building a second model
    clip_core.save_checkpoint(SimpleNamespace(state_dict=lambda: sd, cfg=model_cfg), local / "model")
    (local / "tokenizer.json").write_text(config["tokenizer_json"])
    (local / "tokenizer.meta.json").write_text(json.dumps({"context_length": config["tokenizer_context_length"]}))


def export_model(sd: dict[str, torch.Tensor], model_cfg: clip_core.CLIPConfig, config: dict, url: str) -> None:
    """Write the final model directory (model.safetensors, model.json, tokenizer.json) to any fsspec URL."""
    with tempfile.TemporaryDirectory(prefix="clip-model-") as tmp:
        _write_model(sd, model_cfg, config, Path(tmp))
        put_dir(tmp, url)
