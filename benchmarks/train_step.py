"""Training-step throughput of clip_core's CLIP vs open_clip's, same weights, same machine, same run.

Usage: python benchmarks/train_step.py [--models tiny ViT-B-32] [--batch 32] [--steps 5] [--rounds 3]

Each (model, precision) pair alternates ours/theirs for several rounds so that machine noise hits
both; the ratio of median samples/s is the result. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

import clip_core
from clip_core import ClipLoss


def _step_fn(model: torch.nn.Module, precision: str, batch: int):
    size = model.visual.image_size if hasattr(model.visual, "image_size") else 224
    if isinstance(size, tuple):
        size = size[0]
    ctx = model.positional_embedding.shape[0]
    vocab = model.token_embedding.weight.shape[0]
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=g)
    tokens = torch.randint(1, vocab - 1, (batch, ctx), generator=g)
    tokens[:, -1] = vocab - 1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    loss_fn = ClipLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        amp = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with amp:
            img = model.encode_image(images, normalize=True)
            txt = model.encode_text(tokens, normalize=True)
            loss = loss_fn(img.float(), txt.float(), model.logit_scale.exp())
        loss.backward()
        opt.step()

    return step


def _time(step, steps: int) -> float:
    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["tiny", "ViT-B-32"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import open_clip

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}")
    print("| model | precision | ours samples/s | open_clip samples/s | ours / open_clip |")
    print("|---|---|---|---|---|")
    for name in args.models:
        cfg = clip_core.get_model_config(name)
        for precision in args.precisions:
            torch.manual_seed(0)
            ours = clip_core.create_model(cfg).train()
            if name in open_clip.list_models():
                theirs = open_clip.create_model(name, pretrained=None)
            else:
                open_clip.add_model_config(str(clip_core.config.CONFIG_DIR / f"{name}.json"))
                theirs = open_clip.create_model(name, pretrained=None)
            theirs.load_state_dict(ours.state_dict())
            theirs.train()
            steps = {"ours": _step_fn(ours, precision, args.batch), "theirs": _step_fn(theirs, precision, args.batch)}
            rates: dict[str, list[float]] = {"ours": [], "theirs": []}
            for _ in range(args.rounds):
                for who, fn in steps.items():
                    rates[who].append(args.batch * args.steps / _time(fn, args.steps))
            o, t = statistics.median(rates["ours"]), statistics.median(rates["theirs"])
            print(f"| {name} | {precision} | {o:.1f} | {t:.1f} | {o / t:.2f} |", flush=True)


if __name__ == "__main__":
    main()
