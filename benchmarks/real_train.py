"""Real-data training benchmark: openclipart drawings, our trainer vs open_clip's at equal CPU time.

Usage: python benchmarks/real_train.py [--budget 90] [--contenders ours ours-pd50 open_clip] [--model tiny]

Data: Debian's `openclipart-png` (installed here with apt-get when missing), about 8,100 clip-art
drawings that no one in this project made, decoded once on white to 64 px (area-resized to the
model's size). Category = top-level folder (those with >= 50 drawings; `unsorted` and `special`
left out); caption = the folder path and the file name's words, e.g.
"recreation sports table tennis omar abo-na" (author names stay: real alt-text is noisy too).
20% of each category (at most 40) is held out; the task is zero-shot category classification of
the held-out drawings with prompts "a drawing of {category}." (top-1, balanced classes).

Every contender gets the same pre-decoded images (no augmentation), the same tokenizer (a BPE
trained on the training captions, as `train.tokenizer: train-bpe`), the same seeded batches and the
same budget of *process CPU seconds* (this 2-core machine is shared: wall time would measure the
neighbours). Zero-shot evaluation pauses the clock. The learning-rate schedule of each contender
spans its own budget (steps = budget / its measured step cost).
  ours        the training loop's engine and loss (components.train: DDP engine, params.yaml recipe)
  ours-pd50   the same with train.patch_dropout 0.5
  ours-compile the same with train.compile (inductor; its compilation is charged to the budget)
  open_clip   open_clip's model and ClipLoss with open_clip_train's defaults (lr 5e-4, wd 0.2, betas by
              its name rule, no clipping, cosine_lr), warm-up scaled like ours (open_clip's 10,000 would
              never end in a few minutes)
Prints a markdown table; results go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path("/usr/share/openclipart/png")
SKIP = {"unsorted", "special"}
SIZE = 64
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def ensure_openclipart() -> None:
    if not ROOT.exists():
        subprocess.run(["apt-get", "install", "-y", "openclipart-png"], check=True)


def caption_of(path: Path) -> str:
    words = [*path.relative_to(ROOT).parent.parts, re.sub(r"[_\s]+\d+$", "", path.stem)]
    return re.sub(r"\s+", " ", " ".join(words).replace("_", " ")).strip()


def load_image(path: Path) -> np.ndarray | None:
    """64x64 RGB on white; None for a drawing PIL refuses as a decompression bomb (a few are > 100 MP)."""
    try:
        im = Image.open(path)
    except Image.DecompressionBombError:
        return None
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))  # clip art is transparent: draw it on white
        im = Image.alpha_composite(bg, im)
    im = im.convert("RGB")
    im.thumbnail((SIZE, SIZE))
    canvas = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    canvas.paste(im, ((SIZE - im.width) // 2, (SIZE - im.height) // 2))
    return np.asarray(canvas)


def build_data(seed: int = 0, cache: Path = Path("/tmp/openclipart_64.npz")):
    """(train images uint8 (N,64,64,3), captions, eval images, eval labels, class names); decoded once, cached."""
    if not cache.exists():
        paths = sorted(p for p in ROOT.rglob("*.png") if p.relative_to(ROOT).parts[0] not in SKIP)
        images = [load_image(p) for p in paths]
        keep = [i for i, im in enumerate(images) if im is not None]
        np.savez(cache, images=np.stack([images[i] for i in keep]), paths=np.array([str(paths[i]) for i in keep]))
    z = np.load(cache)
    pixels = dict(zip(z["paths"].tolist(), z["images"]))
    by_class: dict[str, list[Path]] = {}
    for d in sorted(p for p in ROOT.iterdir() if p.is_dir() and p.name not in SKIP):
        files = sorted(f for f in d.rglob("*.png") if str(f) in pixels)
        if len(files) >= 50:
            by_class[d.name] = files
    rng = random.Random(seed)
    train, evals = [], []
    for label, files in enumerate(by_class.values()):
        files = files[:]
        rng.shuffle(files)
        n_eval = min(40, len(files) // 5)
        evals += [(f, label) for f in files[:n_eval]]
        train += files[n_eval:]
    rng.shuffle(train)
    train_imgs = np.stack([pixels[str(f)] for f in train])
    eval_imgs = np.stack([pixels[str(f)] for f, _ in evals])
    classnames = [n.replace("_", " ") for n in by_class]
    return train_imgs, [caption_of(f) for f in train], eval_imgs, [y for _, y in evals], classnames


def to_tensor(imgs: np.ndarray, size: int = SIZE) -> torch.Tensor:
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0
    if size != SIZE:
        x = F.interpolate(x, size=(size, size), mode="area")
    return (x - MEAN) / STD


@torch.no_grad()
def zero_shot(model, tokenizer, eval_x: torch.Tensor, labels: list[int], classnames: list[str]) -> float:
    was = model.training
    model.eval()
    text = F.normalize(model.encode_text(tokenizer([f"a drawing of {c}." for c in classnames])), dim=-1)
    img = F.normalize(model.encode_image(eval_x), dim=-1)
    acc = float(((img @ text.T).argmax(-1) == torch.tensor(labels)).float().mean())
    model.train(was)
    return acc


class Ours:
    """components.train: build_model, build_engine (DDP, 1 worker), build_loss, params.yaml's recipe."""

    def __init__(self, model_name: str, total: int, patch_dropout: float = 0.0, compile: bool = False):
        from components.train.config import TrainConfig
        from components.train.engine import build_engine
        from components.train.loop import build_loss, build_model
        from flows.params import load_params

        recipe = load_params(Path(__file__).resolve().parents[1] / "params.yaml").train
        self.cfg = TrainConfig(model=model_name, strategy="ddp", workers=1, steps=total, warmup=max(1, total // 12),
                               lr=recipe.lr, wd=recipe.wd, beta1=recipe.beta1, beta2=recipe.beta2, eps=recipe.eps,
                               grad_clip=recipe.grad_clip, patch_dropout=patch_dropout, compile=compile)  # fmt: skip
        self.model = build_model(self.cfg)
        self.engine = build_engine(self.model, self.cfg, torch.device("cpu"), None)
        self.loss_fn = build_loss(self.cfg)

    def step(self, images: torch.Tensor, tokens: torch.Tensor) -> float:
        loss = self.engine.micro_step(images, tokens, self.loss_fn)
        self.engine.step()
        return float(loss)


class OpenClip:
    """open_clip's model and ClipLoss, open_clip_train's optimiser grouping and cosine_lr with its defaults."""

    def __init__(self, model_name: str, total: int, state: dict):
        import open_clip
        from open_clip_train.params import get_default_params
        from open_clip_train.scheduler import cosine_lr

        import clip_core

        if model_name not in open_clip.list_models():
            open_clip.add_model_config(str(clip_core.config.CONFIG_DIR / f"{model_name}.json"))
        self.model = open_clip.create_model(model_name, pretrained=None)
        self.model.load_state_dict(state)  # the same initial weights as ours
        self.model.train()
        d = get_default_params(model_name)
        exclude = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n  # noqa: E731
        named = list(self.model.named_parameters())
        groups = [{"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
                  {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": 0.2}]  # fmt: skip
        self.opt = torch.optim.AdamW(groups, lr=d["lr"], betas=(d["beta1"], d["beta2"]), eps=d["eps"])
        self.sched = cosine_lr(self.opt, d["lr"], max(1, total // 12), total)
        self.loss_fn = open_clip.ClipLoss()
        self.n = 0

    def step(self, images: torch.Tensor, tokens: torch.Tensor) -> float:
        self.sched(self.n)
        self.opt.zero_grad(set_to_none=True)
        out = self.model(images, tokens)
        loss = self.loss_fn(out["image_features"], out["text_features"], out["logit_scale"]) if isinstance(out, dict) \
            else self.loss_fn(*out[:3])  # fmt: skip
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, math.log(100))
        self.n += 1
        return float(loss.detach())


def run(name: str, args, data, tokenizer) -> dict:
    import clip_core

    train_x, captions, eval_u8, labels, classnames = data
    size = clip_core.get_model_config(args.model).vision_cfg.image_size
    eval_x = to_tensor(eval_u8, size)
    torch.manual_seed(args.seed)
    state = clip_core.create_model(args.model).state_dict()

    def make(total: int):
        torch.manual_seed(args.seed)
        if name == "open_clip":
            return OpenClip(args.model, total, state)
        c = Ours(args.model, total, patch_dropout=0.5 if name == "ours-pd50" else 0.0, compile=name == "ours-compile")
        c.model.load_state_dict(state)
        return c

    g = torch.Generator().manual_seed(args.seed)

    def batch():
        idx = torch.randint(0, len(train_x), (args.batch,), generator=g)
        return to_tensor(train_x[idx.numpy()], size), tokenizer([captions[i] for i in idx.tolist()])

    # calibrate the step cost (after compilation, whose CPU time is charged below) to size the schedule
    probe = make(10**6)
    c0 = time.process_time()
    probe.step(*batch())
    first = time.process_time() - c0
    c0 = time.process_time()
    for _ in range(3):
        probe.step(*batch())
    per_step = (time.process_time() - c0) / 3
    total = max(20, int((args.budget - first) / per_step))
    del probe
    contender = make(total)
    checkpoints = [args.budget * f for f in (0.25, 0.5, 0.75, 1.0)]
    curve, used, steps, wall0 = [], 0.0, 0, time.perf_counter()
    t_eval = 0.0
    while steps < total and used < args.budget:
        images, tokens = batch()
        c0 = time.process_time()
        loss = contender.step(images, tokens)
        used += time.process_time() - c0
        steps += 1
        if checkpoints and used >= checkpoints[0]:
            checkpoints.pop(0)
            e0 = time.perf_counter()
            curve.append((round(used), zero_shot(contender.model, tokenizer, eval_x, labels, classnames)))
            t_eval += time.perf_counter() - e0
    top1 = zero_shot(contender.model, tokenizer, eval_x, labels, classnames)
    return {"name": name, "steps": steps, "planned": total, "cpu_s": used, "first_step_cpu_s": first, "loss": loss,
            "top1": top1, "curve": curve, "wall_s": time.perf_counter() - wall0 - t_eval}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=90.0, help="process CPU seconds per contender")
    ap.add_argument("--contenders", nargs="+", default=["ours", "ours-pd50", "open_clip"],
                    choices=["ours", "ours-pd50", "ours-compile", "open_clip"])  # fmt: skip
    ap.add_argument("--model", default="tiny", help="params.yaml's default; tiny-64 for 64 px")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    ensure_openclipart()
    import clip_core

    t0 = time.perf_counter()
    data = build_data(args.seed)
    train_x, captions, eval_x, _, classnames = data
    cfg = clip_core.get_model_config(args.model).text_cfg
    tokenizer = clip_core.Tokenizer.train(captions, cfg.vocab_size, cfg.context_length)
    print(f"openclipart: {len(train_x)} train drawings, {len(eval_x)} held out, {len(classnames)} categories "
          f"(chance {1 / len(classnames):.3f}); data ready in {time.perf_counter() - t0:.0f} s; model {args.model}, "
          f"batch {args.batch}, budget {args.budget:.0f} CPU-s each, torch threads {torch.get_num_threads()}")  # fmt: skip
    print("| contender | steps (planned) | CPU s | first step CPU s | wall s | final loss | zero-shot top-1 | "
          "top-1 at 25/50/75/100% of budget | top-1 per CPU-minute |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.contenders:
        r = run(name, args, data, clip_core.Tokenizer(tokenizer.backend, tokenizer.context_length))
        curve = " / ".join(f"{a:.3f}" for _, a in r["curve"])
        print(f"| {name} | {r['steps']} ({r['planned']}) | {r['cpu_s']:.0f} | {r['first_step_cpu_s']:.1f} | {r['wall_s']:.0f} | "
              f"{r['loss']:.3f} | {r['top1']:.3f} | {curve} | {r['top1'] / (r['cpu_s'] / 60):.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
