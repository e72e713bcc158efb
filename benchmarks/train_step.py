"""Training-step throughput of clip_core's CLIP vs open_clip's, same weights, same machine, same run.

Usage: python benchmarks/train_step.py [--models tiny ViT-B-32] [--batch 32] [--steps 5] [--rounds 3]
                                       [--variants eager compiled] [--patch-dropout 0.5]

Each (model, precision, variant) alternates ours/theirs for several rounds so that machine noise hits
both; the ratio of median samples/s is the result. Variant `compiled` is `torch.compile` of both
models (a wrapper, as `train.compile` on the DDP engine and open_clip_train's --torchcompile do);
its first step (the compilation) is timed apart. `--patch-dropout` sets FLIP patch dropout on
both models (open_clip's PatchDropout). Prints a markdown table.
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
            img, txt, scale = model(images, tokens)[:3]  # forward: what torch.compile compiles
            loss = loss_fn(img.float(), txt.float(), scale.float())
        loss.backward()
        opt.step()

    return step


def _time(step, steps: int, first: list[float] | None = None) -> float:
    t0 = time.perf_counter()
    step()  # warm-up (the compilation, for compiled models)
    if first is not None:
        first.append(time.perf_counter() - t0)
    for _ in range(2):  # a compiled model's next steps are still slow (backward, optimiser state, autotuning)
        step()
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
    ap.add_argument("--variants", nargs="+", default=["eager"], choices=["eager", "compiled"])
    ap.add_argument("--patch-dropout", type=float, default=0.0)
    args = ap.parse_args()
    import open_clip
    from open_clip.transformer import PatchDropout

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, patch dropout {args.patch_dropout}")
    print(
        "| model | precision | variant | ours samples/s | open_clip samples/s | ours / open_clip | first step ours / theirs (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        cfg = clip_core.get_model_config(name)
        for precision in args.precisions:
            # all variants' contestants alternate within each round, so compiled/eager ratios share the noise
            steps, labels = {}, []
            for variant in args.variants:
                torch.manual_seed(0)
                ours = clip_core.create_model(cfg).train()
                if name not in open_clip.list_models():
                    open_clip.add_model_config(str(clip_core.config.CONFIG_DIR / f"{name}.json"))
                theirs = open_clip.create_model(name, pretrained=None)
                theirs.load_state_dict(ours.state_dict())
                theirs.train()
                if args.patch_dropout:
                    ours.set_patch_dropout(args.patch_dropout)
                    theirs.visual.patch_dropout = PatchDropout(args.patch_dropout)
                if variant == "compiled":
                    ours = torch.compile(ours)  # what train.compile does on the DDP engine (DeepSpeed: in place)
                    theirs = torch.compile(theirs)  # what open_clip_train's --torchcompile does
                steps[(variant, "ours")] = _step_fn(ours, precision, args.batch)
                steps[(variant, "theirs")] = _step_fn(theirs, precision, args.batch)
                labels.append(variant)
            rates: dict[tuple, list[float]] = {k: [] for k in steps}
            first: dict[tuple, list[float]] = {k: [] for k in steps}
            for _ in range(args.rounds):
                for key, fn in steps.items():
                    rates[key].append(args.batch * args.steps / _time(fn, args.steps, first[key]))
            med = {k: statistics.median(v) for k, v in rates.items()}
            for variant in labels:
                o, t = med[(variant, "ours")], med[(variant, "theirs")]
                vs_eager = f" (x{o / med[('eager', 'ours')]:.2f} / x{t / med[('eager', 'theirs')]:.2f} eager)" if (
                    variant != "eager" and "eager" in labels) else ""  # fmt: skip
                print(f"| {name} | {precision} | {variant}{vs_eager} | {o:.1f} | {t:.1f} | {o / t:.2f} | "
                      f"{first[(variant, 'ours')][0]:.0f} / {first[(variant, 'theirs')][0]:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
