"""Check infra/cost_model.py against measured 1- and 2-worker Ray Train runs (CPU, gloo, DDP, tiny model).

Measures, on this machine: the collective backend's latency and bandwidth (gloo all-reduce between 2
local processes, small and large messages), one thread's matmul flop/s on the logits' shapes, then
samples/s of real Ray Train runs with 1 and 2 workers. The model gets the 1-worker samples/s plus the
measured machine numbers and predicts the 2-worker samples/s; the script prints both.

Usage: python benchmarks/scaling.py --out /tmp/bench-scaling [--steps 60] [--batch 64] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "components" / "train"))


def _gloo_worker(rank: int, port: int, sizes: list[int], reps: int, out: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    times = {}
    for n in sizes:
        t = torch.ones(n)
        for _ in range(3):
            dist.all_reduce(t)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(reps):
            dist.all_reduce(t)
        times[n] = (time.perf_counter() - t0) / reps
    if rank == 0:
        Path(out).write_text(json.dumps(times))
    dist.destroy_process_group()


def measure_gloo(out_dir: Path) -> tuple[float, float]:
    """(latency_s per ring step, bandwidth B/s) from 2-process gloo all-reduces of 1 and 1M floats.

    A 2-rank ring all-reduce is 2 steps: t = 2 * latency + 2 * (1/2) * bytes / bw.
    """
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    small, large = 1, 1 << 20
    out = out_dir / "gloo.json"
    mp.spawn(_gloo_worker, args=(port, [small, large], 20, str(out)), nprocs=2, join=True)
    t = {int(k): v for k, v in json.loads(out.read_text()).items()}
    latency = t[small] / 2
    bandwidth = large * 4 / max(t[large] - t[small], 1e-9)
    return latency, bandwidth


def measure_flops(batch: int, embed_dim: int) -> float:
    """fp32 matmul flop/s of one thread on the logits' shape at 2 workers: (2B, D) @ (D, 2B)."""
    import torch

    torch.set_num_threads(1)
    n = 2 * batch
    a, b = torch.randn(n, embed_dim), torch.randn(embed_dim, n)
    for _ in range(10):
        a @ b
    reps = 2000
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2.0 * n * n * embed_dim * reps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-scaling"))
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2, help="1- and 2-worker runs alternate this many times; medians")
    args = ap.parse_args()
    os.environ.setdefault("CLIP_TRAIN_NO_PROGRESS", "1")
    args.out.mkdir(parents=True, exist_ok=True)

    from shapes_data import COLOURS, SHAPES
    from train_throughput import make_data, ray_run

    import clip_core
    from infra.cost_model import ScalingInputs, step_cost

    model_cfg = clip_core.get_model_config("tiny")
    params = sum(p.numel() for p in clip_core.create_model("tiny").parameters() if p.requires_grad)
    latency, bandwidth = measure_gloo(args.out)
    flops = measure_flops(args.batch, model_cfg.embed_dim)
    load_before = os.getloadavg()

    shards = make_data(args.out, 8, 128)
    tok = clip_core.Tokenizer.train([f"a {c} {s}" for c in COLOURS for s in SHAPES] * 4, 1024, 32)
    # Alternate 1 and 2 workers so both see the same (shared, noisy) machine; report medians and every round.
    import shutil
    import statistics

    rounds: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for w in (1, 2):
            shutil.rmtree(args.out / f"run-{w}w-ddp-fp32", ignore_errors=True)  # no resume from the last round
            rounds[w].append(ray_run(shards, tok, args.out, w, "ddp", "fp32", args.steps, args.batch))
    one, two = ({"samples_per_s": statistics.median(r["samples_per_s"] for r in rounds[w])} for w in (1, 2))

    common = dict(
        per_worker_samples_per_s=one["samples_per_s"],
        local_batch=args.batch,
        embed_dim=model_cfg.embed_dim,
        param_count=params,
        bandwidth_bytes_per_s=bandwidth,
        flops_per_s=flops,
        latency_s=latency,
    )
    # Each Ray worker runs 1 torch thread plus 1 data-loader process: on a machine with C cores,
    # 2 workers want 4 busy processes. `cores` is what the workers can have: the CPU count.
    shared = ScalingInputs(**common, cores=float(os.cpu_count() or 1), threads_per_worker=2)
    dedicated = ScalingInputs(**common)
    cost = step_cost(shared, 2)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPU cores, {platform.processor() or 'cpu'}",
        "load_avg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "command": " ".join(["python", *sys.argv]),
        "tiny_params": params,
        "gloo_latency_us": latency * 1e6,
        "gloo_bandwidth_MBps": bandwidth / 1e6,
        "matmul_GFLOPs_1thread": flops / 1e9,
        "measured_1w": one["samples_per_s"],
        "measured_2w": two["samples_per_s"],
        "predicted_2w_shared_cores": cost.samples_per_s(args.batch),
        "predicted_2w_dedicated": step_cost(dedicated, 2).samples_per_s(args.batch),
        "predicted_2w_breakdown_ms": {
            "compute": cost.compute_s * 1e3,
            "logits_extra": cost.logits_extra_s * 1e3,
            "gather": cost.gather_s * 1e3,
            "allreduce": cost.allreduce_s * 1e3,
        },
        "rounds_samples_per_s": {f"{w}w": [round(r["samples_per_s"], 1) for r in rounds[w]] for w in (1, 2)},
        "rounds_wall_s": {f"{w}w": [round(r["wall_s"], 1) for r in rounds[w]] for w in (1, 2)},
    }
    (args.out / "scaling.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print()
    print("| workers | measured samples/s | predicted (shared cores) | predicted (own device each) |")
    print("|---|---|---|---|")
    print(f"| 1 | {one['samples_per_s']:.0f} | (input) | (input) |")
    print(
        f"| 2 | {two['samples_per_s']:.0f} | {result['predicted_2w_shared_cores']:.0f} | {result['predicted_2w_dedicated']:.0f} |"
    )


if __name__ == "__main__":
    main()
