"""A few-minute CPU training run on generated coloured shapes: zero-shot colour/shape accuracy and the curve (PNG).

Usage: python benchmarks/train_shapes_run.py --out /tmp/shapes-run [--steps 600] [--set train.KEY=VALUE ...]
Goes through the same glue as `clip-pipeline train` (flows.train_stage.run_train: Ray workers, DeepSpeed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "components" / "train"))


def plot(metrics: list[dict], path: Path) -> None:
    """Loss and in-training zero-shot accuracy against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([m["step"] for m in metrics], [m["loss"] for m in metrics], label="contrastive loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ev = [m for m in metrics if "zeroshot_top1" in m]
    if ev:
        ax2 = ax.twinx()
        steps, accs = [m["step"] for m in ev], [m["zeroshot_top1"] for m in ev]
        ax2.plot(steps, accs, "o-", color="tab:orange", label="zero-shot top-1 (shapes)")
        ax2.set_ylabel("zero-shot top-1")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="center right")
    ax.legend(loc="upper right")
    ax.set_title("tiny CLIP on coloured shapes, CPU, 2 Ray workers")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/shapes-run"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--png", type=Path, default=ROOT / "benchmarks" / "results" / "train_shapes_curve.png")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    os.environ.setdefault("CLIP_TRAIN_NO_PROGRESS", "1")
    import torch
    from shapes_data import write_eval, write_shape_shards

    import clip_core
    from components.train.zeroshot import zero_shot_top1
    from flows.params import load_params
    from flows.train_stage import run_train

    out = args.out
    write_shape_shards(out / "ingest" / "shards", n_shards=16, per_shard=256, seed=0)
    evals = {k: write_eval(out / "eval" / k, k, n=240, seed=7) for k in ("colour", "shape")}
    sets = [
        f"pipeline.out_root={out}",
        f"train.steps={args.steps}",
        "train.batch_size=64",
        "train.workers=2",
        "train.warmup=50",
        "train.lr=0.002",
        "train.log_every=20",
        "train.ckpt_every=200",
        "train.eval_every=100",
        f"train.eval_dataset={evals['shape']}",
        *args.sets,
    ]
    params = load_params(ROOT / "params.yaml", sets)
    t0 = time.perf_counter()
    model_dir = Path(run_train(params))
    wall = time.perf_counter() - t0
    model = clip_core.load_checkpoint(model_dir / "model.safetensors")
    tok = clip_core.Tokenizer.load(model_dir / "tokenizer.json")
    tf = clip_core.image_transform(model.image_size, is_train=False)
    acc = {k: zero_shot_top1(model, tok, tf, str(d), torch.device("cpu")) for k, d in evals.items()}
    metrics = [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    args.png.parent.mkdir(parents=True, exist_ok=True)
    plot(metrics, args.png)
    summary = {
        "wall_s": round(wall),
        "steps": args.steps,
        "first_loss": metrics[0]["loss"],
        "final_loss": metrics[-1]["loss"],
        "zeroshot_top1": acc,
        "chance": {"colour": 1 / 8, "shape": 1 / 3},
        "samples_per_s": sum(m["samples_per_s"] for m in metrics[1:]) / max(1, len(metrics) - 1),
    }
    print(json.dumps(summary, indent=2))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
