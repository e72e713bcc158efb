"""Peak memory of contrastive accumulation vs one plain larger batch (CPU, the training loop's DDP engine, 1 worker).

Each configuration runs in a fresh process (peak RSS is per process): a few optimiser steps of the same global batch
as one batch, as `accum` micro-batches with contrastive accumulation (train.accum_mode: contrastive, the default)
and with plain averaging (accum_mode: average, a different objective: fewer negatives). Reported: peak RSS over
the process's RSS once the engine is built (model + optimiser), and seconds per optimiser step relative to the
plain batch measured in the same run (wall and CPU seconds).

    PYTHONPATH=. python benchmarks/accum_memory.py --model tiny --global-batch 512 --accum 4 --steps 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(model: str, batch: int, accum: int, mode: str, steps: int, threads: int) -> dict:
    import torch

    import clip_core
    from components.train.config import TrainConfig
    from components.train.engine import DDPEngine
    from components.train.loop import build_loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = TrainConfig(model=model, strategy="ddp", workers=1, batch_size=batch, accum_steps=accum, accum_mode=mode,
                      steps=100, warmup=1)  # fmt: skip
    net = clip_core.create_model(model)
    engine = DDPEngine(net, cfg, torch.device("cpu"))
    size, ctx = net.image_size, net.context_length
    g = torch.Generator().manual_seed(0)  # the same global batch in every run, split into `accum` micro-batches
    images = torch.randn(batch * accum, 3, size, size, generator=g)
    tokens = torch.randint(1, 1000, (batch * accum, ctx), generator=g)
    tokens[:, ctx // 2] = 1023
    micro = list(zip(images.chunk(accum), tokens.chunk(accum), strict=True))
    base = _rss_mib()  # model, optimiser, and the window's input tensors
    del images, tokens  # (the chunks are views: the same memory)
    loss_fn = build_loss(cfg)
    engine.train_step(micro, loss_fn)  # warm-up (allocates optimiser state)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        loss = engine.train_step(micro, loss_fn)
    per_step = (time.perf_counter() - t0) / steps
    cpu_per_step = (time.process_time() - c0) / steps  # CPU seconds: less disturbed than wall time on a shared machine
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"batch": batch, "accum": accum, "mode": mode, "base_mib": round(base), "peak_mib": round(peak),
            "peak_over_base_mib": round(peak - base), "s_per_step": per_step, "cpu_s_per_step": cpu_per_step,
            "loss": loss}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--global-batch", type=int, default=512)
    ap.add_argument("--accum", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", nargs=3, metavar=("BATCH", "ACCUM", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        b, k, mode = args.worker
        print(json.dumps(worker(args.model, int(b), int(k), mode, args.steps, args.threads)))
        return
    n, k = args.global_batch, args.accum
    runs = [(n, 1, "contrastive"), (n // k, k, "contrastive"), (n // k, k, "average")]
    rows = []
    for b, acc, mode in runs:
        cmd = [sys.executable, __file__, "--model", args.model, "--steps", str(args.steps), "--threads", str(args.threads),
               "--worker", str(b), str(acc), mode]  # fmt: skip
        rows.append(json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]))
    ref = rows[0]
    print(f"model {args.model}, global batch {n} (accum {k} x {n // k}), {args.steps} steps, {args.threads} threads")
    print("| run | peak RSS over base (MiB) | vs one batch | wall s/step vs one batch | CPU s/step vs one batch | loss |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        name = f"batch {r['batch']} x accum {r['accum']}" + (f" ({r['mode']})" if r["accum"] > 1 else "")
        print(f"| {name} | {r['peak_over_base_mib']} | {r['peak_over_base_mib'] / ref['peak_over_base_mib']:.2f} | "
              f"{r['s_per_step'] / ref['s_per_step']:.2f} | {r['cpu_s_per_step'] / ref['cpu_s_per_step']:.2f} | "
              f"{r['loss']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
