"""Benchmark: dedup features and eval encoding, local path vs Ray Data (data.engine ray) with 1 and 2 workers.

Run from the project root:
    python benchmarks/data_engine_features.py --images 2000 --eval-images 512
Features: `components.audit.shards.shard_features` (pHash comes from ingest; this is the per-image descriptor
+ 64 px thumbnail the dedup/overlap stages decode every training image for) over `--images` openclipart PNGs
(the files' own bytes, 118-1333 px) written as `--shards` webdataset shards; local vs engine ray on a local Ray of
1 and of 2 CPUs (Ray Data runs one task per shard, as many at once as the CPUs allow).
Encoding: `cache.encode_images` vs `ray_encoder.encode_images_ray` (a 2-CPU Ray; pool of 1 and of 2 CPU actors,
decoding fused into them) of `--eval-images` of the same PNGs as files, random-weight `--models`, batch 64.
Each configuration runs `--repeats` times back to back; the best run is reported (features: the first Ray run
of a cluster also starts its worker processes, reported as `first_s`, not counted). Every encode call starts its
own actor pool: its cost is the time of a one-batch call (`one_batch_s`), and `marginal_images_per_s` =
(N - 64) / (best N-image time - best one-batch time) is the rate once the pool is up (what a large eval set sees).
The arrays are checked against the local path's (features: equal; embeddings: max |diff|). Prints JSON; numbers
go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import platform
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages, not an installed copy

CLIPART = "/usr/share/openclipart/png"


def clipart_files(n: int) -> list[Path]:
    """The first `n` openclipart PNGs under 16 Mpx (sorted paths); apt-get installs the package when missing."""
    if not os.path.isdir(CLIPART):
        os.system("apt-get install -y openclipart-png >/dev/null 2>&1")
    from PIL import Image

    out = []
    for p in sorted(glob.glob(f"{CLIPART}/**/*.png", recursive=True)):
        with Image.open(p) as im:
            if im.width * im.height <= 16_000_000 and min(im.size) >= 16:
                out.append(Path(p))
        if len(out) == n:
            return out
    raise SystemExit(f"{CLIPART}: only {len(out)} usable PNGs, asked for {n}")


def write_shards(files: list[Path], root: Path, n_shards: int) -> pd.DataFrame:
    """Webdataset shards of the files' bytes ({key}.png + {key}.txt); metadata rows (key, shard)."""
    root.mkdir(parents=True)
    rows = []
    for s, part in enumerate(np.array_split(np.arange(len(files)), n_shards)):
        name = f"{s:05d}.tar"
        with tarfile.open(root / name, "w") as tar:
            for i in part:
                key = f"{i:08d}"
                for member, data in ((f"{key}.png", files[i].read_bytes()), (f"{key}.txt", b"a drawing")):
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                rows.append({"key": key, "shard": name})
    return pd.DataFrame(rows)


def timed(fn, repeats: int) -> tuple[list[float], object]:
    """Wall seconds of each of `repeats` calls, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def start_ray(cpus: int, tmp: str) -> None:
    import ray

    from infra.ray_launcher import ensure_ray

    ray.shutdown()
    os.environ["CLIP_RAY_TMPDIR"] = tmp
    ensure_ray(num_cpus=cpus)


def features(meta: pd.DataFrame, shards: str, repeats: int, tmp: str) -> dict:
    from components.audit.shards import shard_features

    n = len(meta)
    res: dict = {}
    times, (vecs, thumbs) = timed(lambda: shard_features(shards, meta, 64), repeats)
    res["local"] = {"best_s": min(times), "runs_s": times, "images_per_s": n / min(times)}
    for cpus in (1, 2):
        start_ray(cpus, tmp)
        times, (v, t) = timed(lambda: shard_features(shards, meta, 64, engine="ray"), repeats + 1)
        same = bool(np.array_equal(v, vecs) and np.array_equal(t, thumbs))
        res[f"ray_{cpus}"] = {"best_s": min(times[1:]), "first_s": times[0], "runs_s": times,
                              "images_per_s": n / min(times[1:]), "equal_to_local": same}  # fmt: skip
    for k in ("ray_1", "ray_2"):
        res[k]["vs_local"] = res[k]["images_per_s"] / res["local"]["images_per_s"]
    res["ray_2_vs_ray_1"] = res["ray_2"]["images_per_s"] / res["ray_1"]["images_per_s"]
    return res


def encoding(files: list[Path], model_name: str, repeats: int, tmp: str) -> dict:
    import torch

    from clip_core import create_model
    from components.evaluate.cache import encode_images
    from components.evaluate.images import FileImages
    from components.evaluate.ray_encoder import encode_images_ray

    torch.manual_seed(0)
    model = create_model(model_name).eval()
    src = FileImages([str(p) for p in files])
    n = len(src)
    res: dict = {"model": model_name, "threads_local": torch.get_num_threads()}
    times, ref = timed(lambda: encode_images(model, src, batch_size=64), repeats)
    res["local"] = {"best_s": min(times), "runs_s": times, "images_per_s": n / min(times)}
    start_ray(2, tmp)
    one_batch = FileImages(src.locations[:64])
    for actors in (1, 2):  # each call starts its own actor pool (processes, torch import, model copy)

        def run(s, a=actors):
            return encode_images_ray(model, s, batch_size=64, device="cpu", actors=a)

        t_one, _ = timed(lambda: run(one_batch), repeats + 1)
        times, f = timed(lambda: run(src), repeats)
        res[f"ray_{actors}_actors"] = {"best_s": min(times), "runs_s": times, "one_batch_s": t_one,
                                       "images_per_s": n / min(times),
                                       "marginal_images_per_s": (n - 64) / (min(times) - min(t_one[1:])),
                                       "max_abs_diff": float((f - ref).abs().max())}  # fmt: skip
    for k in ("ray_1_actors", "ray_2_actors"):
        res[k]["vs_local"] = res[k]["images_per_s"] / res["local"]["images_per_s"]
        res[k]["marginal_vs_local"] = res[k]["marginal_images_per_s"] / res["local"]["images_per_s"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--eval-images", type=int, default=512)
    ap.add_argument("--models", nargs="+", default=["tiny"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip", choices=["features", "encoding"], default=None)
    args = ap.parse_args()
    import ray

    out: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "ray": ray.__version__,
                 "load_before": os.getloadavg()[0]}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="rdf-") as d:
        files = clipart_files(max(args.images, args.eval_images))
        if args.skip != "features":
            meta = write_shards(files[: args.images], Path(d) / "shards", args.shards)
            out["features"] = {"images": args.images, "shards": args.shards,
                               **features(meta, str(Path(d) / "shards"), args.repeats, f"{d}/ray")}  # fmt: skip
        if args.skip != "encoding":
            out["encoding"] = {"images": args.eval_images,
                               "models": [encoding(files[: args.eval_images], m, args.repeats, f"{d}/ray")
                                          for m in args.models]}  # fmt: skip
        ray.shutdown()
    out["load_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
