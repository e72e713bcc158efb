"""The GPU kit's Ray step: the training loop launched by Ray Train (infra.ray_launcher) on the machine's GPU.

Usage: python benchmarks/gpu_ray_check.py --out DIR    (benchmarks/gpu_ray_check.sh on the GPU machine)
Tiny model on coloured-shape shards, DeepSpeed ZeRO-2 bf16, one worker (all GPUs there are: one). Writes
DIR/ray.json with the loss curve's ends and the wall time; fails unless the loss fell and the model was exported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "components" / "train"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    import torch
    from shapes_data import COLOURS, SHAPES, write_shape_shards

    import clip_core
    from components.train.config import TrainConfig
    from components.train.loop import train_loop_per_worker
    from infra.deepspeed_config import deepspeed_config
    from infra.ray_launcher import launch

    os.environ.setdefault("CLIP_TRAIN_NO_PROGRESS", "1")
    use_gpu = torch.cuda.is_available()
    work = Path(tempfile.mkdtemp(prefix="gpu_ray_"))
    shards = write_shape_shards(work / "shards", n_shards=4, per_shard=64)
    tok = clip_core.Tokenizer.train([f"a {c} {s}" for c in COLOURS for s in SHAPES] * 4, vocab_size=1024, context_length=32)
    cfg = TrainConfig(workers=1, steps=args.steps, batch_size=32, warmup=4, ckpt_every=args.steps, log_every=5,
                      precision="bf16", strategy="deepspeed", zero_stage=2, use_gpu=use_gpu, num_data_workers=1,
                      shuffle_buffer=32)  # fmt: skip
    storage = str(work / "train")
    fn_config = {"train": dataclasses.asdict(cfg), "shards": shards, "storage_path": storage,
                 "tokenizer_json": tok.backend.to_str(), "tokenizer_context_length": 32,
                 "ds_config": deepspeed_config(2, "bf16", 32, 1, cfg.grad_clip)}  # fmt: skip
    t0 = time.perf_counter()
    launch(train_loop_per_worker, fn_config, 1, use_gpu, 2, storage, 0)
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in (Path(storage) / "metrics.jsonl").read_text().splitlines()]
    import ray

    result = {"ray": ray.__version__, "use_gpu": use_gpu, "steps": args.steps, "wall_s": round(wall, 1),
              "first_loss": rows[0]["loss"], "last_loss": rows[-1]["loss"],
              "cuda_max_alloc_gib": rows[-1].get("cuda_max_alloc_gib"),
              "model_exported": (Path(storage) / "model" / "model.safetensors").exists()}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray.json").write_text(json.dumps(result, indent=2))
    print(f"ray {result['ray']}: Ray Train ran the training loop on {'the GPU' if use_gpu else 'CPU'} in {wall:.0f} s; "
          f"loss {result['first_loss']:.3f} -> {result['last_loss']:.3f}; "
          f"model exported: {result['model_exported']}")  # fmt: skip
    if not (result["last_loss"] < result["first_loss"] and result["model_exported"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
