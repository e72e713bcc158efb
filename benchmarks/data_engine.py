"""Ingest throughput by engine: the local worker pool vs `data.engine: ray` (Ray Data) with 1 and 2 worker CPUs.

Usage: python benchmarks/data_engine.py --n 20000 [--workdir /tmp/bench-ingest] [--repeats 2]
       python benchmarks/data_engine.py --per-core     (only the per-core check rate on web-sized JPEGs)

Every run is a child process ingesting the embedded dataset's training shards (`data synth`, `--n` pairs)
with default params otherwise. Ray runs start a local Ray with `--workers` CPUs first and warm it with a
one-shard ingest; that start-up is reported apart (`setup_s`), the rate covers the measured ingest only.
A `driver only` run feeds pre-computed check results (pickled per batch, as the Ray tasks return them)
to the same ingest loop: the ceiling of the single driver that re-shards and writes the tables, which
`infra/cost_model.py`'s ingest model takes as input. Rounds are interleaved; the median round is reported.
`--per-core` times `checks.check_batch` in this process on 256 and 512 px JPEGs (smooth gradients plus noise,
about the size of web photos at those sides): the per-core input of the model for web-sized images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUN = """
import glob, json, pickle, sys, time
from components.data.config import IngestConfig
import components.data.ingest as ing
mode, src, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = IngestConfig(num_workers=workers if mode == "local" else 0, progress=False)
setup, engine = 0.0, "ray" if mode == "ray" else "local"
if mode == "ray":
    t = time.perf_counter()
    from infra.ray_launcher import ensure_ray
    ensure_ray(num_cpus=workers)
    ing.ingest([sorted(glob.glob(src + "/*.tar"))[0]], out + "-warm", cfg, engine="ray")  # spawns the Ray workers
    setup = time.perf_counter() - t
if mode == "driver":  # the driver's share alone: results computed beforehand, unpickled here as from Ray
    from components.data.sources import expand_sources
    from components.data.workers import check_inline
    blobs = [pickle.dumps(b) for b in check_inline(ing.iter_raw(expand_sources([src]), cfg), cfg)]
    ing.check_sources = lambda *a: (r for b in blobs for r in pickle.loads(b))
t = time.perf_counter()
r = ing.ingest([src], out, cfg, engine=engine)
print(json.dumps({"n": r.n_input, "seconds": time.perf_counter() - t, "setup_s": setup, "version": r.data_version}))
"""


def measure(mode: str, src: str, out: str, workers: int, tmp: str) -> dict:
    """One ingest in a child Python (its own Ray, if any, under `tmp`); its JSON line plus samples/s."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLIP_RAY_TMPDIR": tmp, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run([sys.executable, "-c", RUN, mode, src, out, str(workers)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=1800)  # fmt: skip
    if proc.returncode:
        raise RuntimeError(f"{mode} {workers}: {proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["samples_per_s"] = res["n"] / res["seconds"]
    return res


def per_core(n: int = 60) -> None:
    """check_batch samples/s on one core for 256 and 512 px JPEGs (best of 3)."""
    import io

    import numpy as np
    from PIL import Image

    from components.data.checks import RawSample, check_batch
    from components.data.config import IngestConfig

    rng, cfg = np.random.default_rng(0), IngestConfig(progress=False)
    for side in (256, 512):
        samples = []
        for i in range(n):
            x = np.linspace(0, 255, side)
            img = np.add.outer(x, x * (i % 7 + 1) / 7)[..., None] / 2 + rng.normal(0, 12, (side, side, 3))
            buf = io.BytesIO()
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
            samples.append(RawSample("s", f"k{i}", {"jpg": buf.getvalue(), "txt": b"a caption"}))
        kib = sum(len(s.files["jpg"]) for s in samples) / n / 1024
        rates = []
        for _ in range(3):
            t = time.perf_counter()
            check_batch(samples, cfg)
            rates.append(n / (time.perf_counter() - t))
        print(f"{side} px JPEG q90, {kib:.0f} KiB/sample: {max(rates):,.0f} samples/s on one core (best of 3; all {rates})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--workdir", default="/tmp/bench-ingest")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--per-core", action="store_true", help="only the per-core check rate on web-sized JPEGs")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.per_core:
        per_core()
        return
    from components.data.config import SynthConfig
    from components.data.synth import build_synth

    raw = Path(args.workdir) / f"raw-{args.n}"
    if not (raw / "train").exists():
        cfg = SynthConfig(n_train=args.n, n_eval_per_class=1, n_compositional_per_pair=1, n_retrieval=1, n_planted_duplicates=1)
        build_synth(str(raw), cfg)
    train = str(raw / "train")
    size = sum(f.stat().st_size for f in (raw / "train").glob("*.tar"))
    work = Path(args.workdir) / "engine"
    work.mkdir(parents=True, exist_ok=True)
    runs = {
        "local, num_workers=1": ("local", 1),
        "local, num_workers=2": ("local", 2),
        "ray, 1 worker CPU": ("ray", 1),
        "ray, 2 worker CPUs": ("ray", 2),
        "driver only (pre-computed results)": ("driver", 0),
    }
    rounds: dict[str, list[dict]] = {name: [] for name in runs}
    load = [os.getloadavg()[0]]
    for i in range(args.repeats):  # interleaved, so load from other jobs hits every engine alike
        for name, (mode, w) in runs.items():
            r = measure(mode, train, str(work / f"{mode}{w}-{i}"), w, str(work / "ray"))
            rounds[name].append(r)
            print(f"round {i}: {name}: {r['samples_per_s']:,.0f} samples/s (setup {r['setup_s']:.1f} s)", flush=True)
    load.append(os.getloadavg()[0])
    versions = {r["version"] for rs in rounds.values() for r in rs}
    assert len(versions) == 1, f"engines disagree on the data: {versions}"
    results = {name: sorted(rs, key=lambda r: r["samples_per_s"])[len(rs) // 2] for name, rs in rounds.items()}
    base = results["local, num_workers=2"]["samples_per_s"]
    print(f"\n{args.n} samples, {size / 2**20:.0f} MiB of shards ({size / args.n / 1024:.1f} KiB/sample), "
          f"{os.cpu_count()} CPUs, 1-min load average {load[0]:.1f} before, {load[1]:.1f} after; "
          f"every run wrote data version {versions.pop()}")  # fmt: skip
    print("| engine | samples/s (median) | rounds | vs local, 2 workers | Ray start + warm-up (s) |\n|---|---|---|---|---|")
    for name, r in results.items():
        all_ = " / ".join(f"{x['samples_per_s']:,.0f}" for x in rounds[name])
        setup = f"{r['setup_s']:.1f}" if r["setup_s"] else "-"
        print(f"| {name} | {r['samples_per_s']:,.0f} | {all_} | {r['samples_per_s'] / base:.2f}x | {setup} |")
    print(json.dumps({"bytes_per_sample": size / args.n, "results": results}, indent=1, default=str))


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.0f} s")
