"""CLIP-score filter throughput: the local path vs Ray Data with 1 and 2 actors, on the same ingested shards.

Usage: python benchmarks/filter_throughput.py [--pairs 2000] [--model tiny] [--actors 1 2] [--threads N]
Writes N generated pairs (64 px PNG colour squares with captions) as raw shards, ingests them (OUT/ingest),
saves a random-weight teacher of `--model` (throughput does not depend on the weights), then times
`filter_pairs` with data.engine local and ray (a local Ray with max(CPUs, actors + 1) logical CPUs).
Seconds are the scoring time (shard reading, decoding, both towers; not the teacher's loading); the Ray
figure includes starting its actors, which every run pays. Every run's scores are checked against the
local ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


def write_raw(root: Path, n: int, per_shard: int = 500) -> None:
    rng = np.random.default_rng(0)
    names = list(COLOURS)
    for s in range(0, n, per_shard):
        with tarfile.open(root / f"raw-{s // per_shard:04d}.tar", "w") as tar:
            for j in range(s, min(n, s + per_shard)):
                c = names[j % len(names)]
                arr = np.clip(np.array(COLOURS[c]) + rng.normal(0, 25, (64, 64, 3)), 0, 255).astype(np.uint8)
                buf = io.BytesIO()
                Image.fromarray(arr).save(buf, format="PNG")
                for name, data in ((f"{j:07d}.png", buf.getvalue()), (f"{j:07d}.txt", f"a {c} square".encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def save_teacher(model_name: str, out: Path) -> Path:
    import torch

    import clip_core

    torch.manual_seed(0)
    model = clip_core.create_model(model_name).eval()
    words = [f"a {c} square" for c in COLOURS]
    tok = clip_core.Tokenizer.train(words * 10, vocab_size=300, context_length=model.cfg.text_cfg.context_length)
    out.mkdir(parents=True, exist_ok=True)
    clip_core.save_checkpoint(model, out / "model")
    tok.save(out / "tokenizer.json")
    return out


def run(engine: str, out: Path, ingest_dir: Path, teacher: Path, actors: int, batch: int) -> dict:
    from components.filter.config import FilterConfig
    from components.filter.stage import filter_pairs

    cfg = FilterConfig(
        enabled=True, teacher=str(teacher), keep_fraction=0.5, batch_size=batch, device="cpu", ray_actors=max(1, actors)
    )
    (out / "ingest").parent.mkdir(parents=True, exist_ok=True)
    r = filter_pairs(str(ingest_dir), str(out), cfg, str(teacher), engine)
    return {"engine": engine, "actors": actors if engine == "ray" else 0, "pairs": r.n_pairs, "seconds": round(r.seconds, 2),
            "pairs_per_s": round(r.pairs_per_s, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workdir", default="/tmp/bench-filter")
    ap.add_argument("--threads", type=int, default=0, help="torch threads of the local path (0: torch's default)")
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    (work / "raw").mkdir(parents=True)
    write_raw(work / "raw", args.pairs)
    from components.data.config import IngestConfig
    from components.data.ingest import ingest

    ingest([str(work / "raw")], str(work / "ingest"), dataclasses.replace(IngestConfig(), num_workers=0, progress=False))
    teacher = save_teacher(args.model, work / "teacher")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = [run("local", work / "local", work / "ingest", teacher, 0, args.batch)]
    base = pd.read_parquet(work / "local" / "scores.parquet")

    import ray

    cpus = max(os.cpu_count() or 2, max(args.actors) + 1)  # each CPU actor holds a CPU; one more for the shard readers
    ray.init(num_cpus=cpus, include_dashboard=False, _temp_dir=str(work / "ray"), log_to_driver=False)
    for a in args.actors:
        t = time.perf_counter()
        row = run("ray", work / f"ray{a}", work / "ingest", teacher, a, args.batch)
        row["ray_cpus"] = cpus
        got = pd.read_parquet(work / f"ray{a}" / "scores.parquet")
        row["max_abs_diff_vs_local"] = float(np.nanmax(np.abs(got["score"].to_numpy() - base["score"].to_numpy())))
        row["wall_s"] = round(time.perf_counter() - t, 2)
        rows.append(row)
    ray.shutdown()
    for row in rows:
        row["speed_vs_local"] = round(row["pairs_per_s"] / rows[0]["pairs_per_s"], 2)
        row["model"] = args.model
        row["local_threads"] = args.threads or "default"
        print(json.dumps(row))


if __name__ == "__main__":
    main()
