"""The project's one shard reader (components.data.tarstream.iter_shard_samples) vs webdataset's tar expander.

Usage: python benchmarks/shard_reader.py [--shards 8] [--per-shard 500] [--repeats 3]
Writes img2dataset-style shards (KEY.png 64x64, KEY.txt, KEY.json) into a temporary directory, then reads
them raw (no decoding) with both readers, alternating, and checks that they yield identical samples.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import fsspec
import numpy as np
import webdataset as wds
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from components.data.tarstream import iter_shard_samples


def write_shards(root: Path, n: int, per: int) -> list[str]:
    rng = np.random.default_rng(0)
    urls = []
    for s in range(n):
        url = str(root / f"shard-{s:06d}.tar")
        with wds.TarWriter(url) as w:
            for i in range(per):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
                w.write({"__key__": f"{s:05d}{i:05d}", "png": buf.getvalue(), "txt": f"caption {i}", "json": b"{}"})
        urls.append(url)
    return urls


def webdataset_reader(urls: list[str]):
    def streams():
        for url in urls:
            with fsspec.open(url, "rb") as f:
                yield {"url": url, "stream": f}

    return wds.tariterators.group_by_keys(wds.tariterators.tar_file_expander(streams()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--per-shard", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls = write_shards(Path(tmp), args.shards, args.per_shard)
        mb = sum(os.path.getsize(u) for u in urls) / 2**20
        times: dict[str, list[float]] = {"webdataset": [], "ours": []}
        for _ in range(args.repeats):
            for name, fn in (("webdataset", webdataset_reader), ("ours", iter_shard_samples)):
                t = time.perf_counter()
                samples = list(fn(urls))
                times[name].append(time.perf_counter() - t)
        same = list(webdataset_reader(urls)) == list(iter_shard_samples(urls))
        best = {k: min(v) for k, v in times.items()}
        print(json.dumps({"samples": len(samples), "MiB": round(mb, 1), "identical": same,
                          "best_s": {k: round(v, 3) for k, v in best.items()},
                          "ours_speed_vs_webdataset": round(best["webdataset"] / best["ours"], 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
