"""Ingest throughput and peak RSS vs reading the same shards with the `webdataset` library alone.

Usage: python benchmarks/ingest.py --n 100000 [--workdir /tmp/bench-ingest] [--workers 2]
Each measured run is a child process; a sampler thread sums RSS over that child and all its
descendants (worker processes) every 0.1 s, so the peak covers the whole process tree.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

INGEST = """
import json, sys, time
from components.data.config import IngestConfig
from components.data.ingest import ingest
t = time.perf_counter()
r = ingest([sys.argv[1]], sys.argv[2], IngestConfig(num_workers=int(sys.argv[3]), progress=False))
print(json.dumps({"n": r.n_input, "ok": r.n_ingested, "seconds": time.perf_counter() - t}))
"""
WDS = """
import glob, json, sys, time
import webdataset as wds
t = time.perf_counter()
urls = sorted(glob.glob(sys.argv[1] + "/*.tar"))
n = 0
for img, txt in wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("pil").to_tuple("png", "txt"):
    img.load()
    n += 1
print(json.dumps({"n": n, "ok": n, "seconds": time.perf_counter() - t}))
"""


def measure(code: str, *args: str) -> dict:
    """Run `code` in a child Python; return its JSON line plus peak tree RSS (MiB) and wall time."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    peak, done = [0, 0], threading.Event()

    def sample() -> None:
        p = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [p, *p.children(recursive=True)]
                rss = sum(q.memory_info().rss for q in procs if q.is_running())
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], p.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = proc.communicate()
    done.set()
    th.join()
    res = json.loads(out.strip().splitlines()[-1])
    res.update(wall_s=time.perf_counter() - t0, peak_tree_rss_mib=peak[0] / 2**20, peak_main_rss_mib=peak[1] / 2**20)
    res["samples_per_s"] = res["n"] / res["seconds"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--workdir", default="/tmp/bench-ingest")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1, help="rounds of all readers, interleaved; the median round is reported")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from components.data.config import SynthConfig
    from components.data.synth import build_synth

    raw = Path(args.workdir) / f"raw-{args.n}"
    if not (raw / "train").exists():
        cfg = SynthConfig(n_train=args.n, n_eval_per_class=1, n_compositional_per_pair=1, n_retrieval=1, n_planted_duplicates=1)
        r = build_synth(str(raw), cfg)
        print(f"synth: {r.n_train} samples in {r.seconds:.1f} s ({r.n_train / r.seconds:.0f}/s, {cfg.num_workers} workers)")
    train = str(raw / "train")
    size_mb = sum(f.stat().st_size for f in (raw / "train").glob("*.tar")) / 2**20
    work = Path(args.workdir)
    runs = {
        "webdataset decode+iterate (1 process)": (WDS, train),
        f"clip-pipeline ingest, num_workers={args.workers}": (INGEST, train, str(work / "ingest"), str(args.workers)),
        "clip-pipeline ingest, num_workers=0": (INGEST, train, str(work / "ingest0"), "0"),
    }
    rounds: dict[str, list[dict]] = {name: [] for name in runs}
    for _ in range(args.repeats):  # interleaved, so load from other jobs hits every reader alike
        for name, (code, *a) in runs.items():
            rounds[name].append(measure(code, *a))
    results = {name: sorted(rs, key=lambda r: r["samples_per_s"])[len(rs) // 2] for name, rs in rounds.items()}
    for name, rs in rounds.items():
        results[name]["all_samples_per_s"] = [round(r["samples_per_s"]) for r in rs]
    load = os.getloadavg()[0]
    print(f"\n{args.n} samples, {size_mb:.0f} MiB of shards, {os.cpu_count()} CPUs, load average now {load:.1f}")
    print("| reader | samples/s | seconds | peak RSS, process tree (MiB) | peak RSS, main (MiB) |\n|---|---|---|---|---|")
    for name, r in results.items():
        rss = f"{r['peak_tree_rss_mib']:.0f} | {r['peak_main_rss_mib']:.0f}"
        print(f"| {name} | {r['samples_per_s']:,.0f} | {r['seconds']:.1f} | {rss} |")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
