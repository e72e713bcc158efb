"""Training throughput of the tiny config: 1/2 Ray workers, DDP vs ZeRO-2, fp32 vs bf16, against peers.

Peers: a plain single-process PyTorch loop over pre-decoded tensors (the compute ceiling: no data
loading, no distribution) and, when `--open-clip-path` points at a directory holding
webdataset<=0.2.86 (open_clip_train's loader breaks on newer ones; install it there with
`pip install --target DIR webdataset==0.2.86 --no-deps`), open_clip's own trainer
(`python -m open_clip_train.main`) on the same shards, model config and tokenizer.

Usage: python benchmarks/train_throughput.py --out /tmp/bench [--steps 40] [--open-clip-path /tmp/oc_peer]
Prints a markdown table; samples/s are global (all workers), averaged after the first logged window.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "components" / "train"))


def make_data(out: Path, n_shards: int, per_shard: int) -> list[str]:
    from shapes_data import write_shape_shards

    return write_shape_shards(out / "shards", n_shards=n_shards, per_shard=per_shard)


def plain_loop(tokenizer, shards: list[str], steps: int, batch: int, precision: str) -> float:
    """samples/s of model + loss + AdamW in one process on tensors decoded up front."""
    import itertools

    import torch

    import clip_core
    from components.train.data import StreamSpec, build_loader
    from components.train.optim import build_optimizer

    torch.manual_seed(0)
    tf = clip_core.image_transform(32, is_train=True)
    batches = list(itertools.islice(build_loader(StreamSpec(shards, 0, 0, 0, 1), tf, tokenizer, batch, 0, 64), 8))
    model = clip_core.create_model("tiny")
    opt = build_optimizer(model, 1e-3, 0.1, (0.9, 0.98), 1e-6)
    loss_fn = clip_core.ClipLoss()
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)
    t0 = None
    for i in range(steps):
        if i == 5:
            t0 = time.perf_counter()
        images, tokens = batches[i % len(batches)]
        with ctx:
            img, txt, scale = model(images, tokens)
        loss = loss_fn(img.float(), txt.float(), scale.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return batch * (steps - 5) / (time.perf_counter() - t0)


def ray_run(shards, tokenizer, out: Path, workers: int, strategy: str, precision: str, steps: int, batch: int) -> dict:
    """One TorchTrainer fit; returns mean samples/s and data-wait fraction over windows after the first."""
    from components.train.config import TrainConfig
    from components.train.loop import train_loop_per_worker
    from infra.deepspeed_config import deepspeed_config
    from infra.ray_launcher import launch

    cfg = TrainConfig(
        workers=workers,
        strategy=strategy,
        precision=precision,
        steps=steps,
        batch_size=batch,
        warmup=5,
        log_every=10,
        ckpt_every=steps,
        num_data_workers=1,
        zero_stage=2,
    )
    storage = out / f"run-{workers}w-{strategy}-{precision}"
    fn_config = {
        "train": dataclasses.asdict(cfg),
        "shards": shards,
        "storage_path": str(storage),
        "tokenizer_json": tokenizer.backend.to_str(),
        "tokenizer_context_length": tokenizer.context_length,
        "ds_config": deepspeed_config(2, precision, batch, 1, 1.0) if strategy == "deepspeed" else None,
    }
    t0 = time.perf_counter()
    launch(train_loop_per_worker, fn_config, workers, False, 1, str(storage), 0)
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in (storage / "metrics.jsonl").read_text().splitlines()][1:]
    return {
        "samples_per_s": sum(r["samples_per_s"] for r in rows) / len(rows),
        "data_wait_frac": sum(r["data_wait_frac"] for r in rows) / len(rows),
        "final_loss": rows[-1]["loss"],
        "wall_s": wall,
    }


def open_clip_run(shards: list[str], tokenizer, out: Path, peer_path: str, steps: int, batch: int, precision: str) -> dict:
    """open_clip_train.main on the same shards (1 process); samples/s parsed from its log lines."""
    import shutil

    cfg_dir = out / "oc_cfg"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "clip_core" / "configs" / "tiny.json", cfg_dir / "tiny-bench.json")
    tokenizer.save(out / "oc_tokenizer.json")
    wrapper = out / "oc_wrapper.py"
    wrapper.write_text(
        "import sys, open_clip, clip_core\n"
        f"open_clip.add_model_config({str(cfg_dir / 'tiny-bench.json')!r})\n"
        f"tok = clip_core.Tokenizer.load({str(out / 'oc_tokenizer.json')!r})\n"
        "import open_clip_train.main as m\n"
        "m.get_tokenizer = lambda *a, **k: tok  # same BPE as ours (vocab 1024)\n"
        "m.main(sys.argv[1:])\n"
    )
    d = Path(shards[0]).parent
    spec = f"{d}/shard-{{000000..{len(shards) - 1:06d}}}.tar"
    args = [
        sys.executable,
        str(wrapper),
        "--train-data",
        spec,
        "--train-num-samples",
        str(steps * batch),
        "--dataset-type",
        "webdataset",
        "--batch-size",
        str(batch),
        "--epochs",
        "1",
        "--workers",
        "1",
        "--precision",
        "amp_bf16" if precision == "bf16" else "fp32",
        "--lr",
        "1e-3",
        "--warmup",
        "5",
        "--model",
        "tiny-bench",
        "--device",
        "cpu",
        "--logs",
        str(out / "oc_logs"),
        "--name",
        f"oc-{precision}",
        "--log-every-n-steps",
        "10",
        "--save-frequency",
        "0",
        "--report-to",
        "",
        "--seed",
        "0",
    ]
    env = {**os.environ, "PYTHONPATH": f"{peer_path}:{ROOT}", "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=out)
    wall = time.perf_counter() - t0
    text = proc.stdout + proc.stderr
    rates = [float(x) for x in re.findall(r"Batch \(t\): [\d.]+, ([\d.]+)/s,", text)]
    if proc.returncode or not rates:
        return {"error": text[-800:]}
    rates = rates[1:] or rates
    return {"samples_per_s": sum(rates) / len(rates), "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/clip-train-bench"))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--open-clip-path", default="")
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("CLIP_TRAIN_NO_PROGRESS", "1")
    from shapes_data import COLOURS, SHAPES

    import clip_core

    args.out.mkdir(parents=True, exist_ok=True)
    shards = make_data(args.out, 8, 128)
    tok = clip_core.Tokenizer.train([f"a {c} {s}" for c in COLOURS for s in SHAPES] * 4, 1024, 32)
    results = []
    for prec in ("fp32", "bf16"):
        import torch

        torch.set_num_threads(1)
        rate = plain_loop(tok, shards, 30, args.batch, prec)
        results.append(("plain PyTorch loop, 1 proc, 1 thread", prec, {"samples_per_s": rate}))
        if args.open_clip_path:
            results.append(
                (
                    "open_clip_train.main, 1 proc, 1 thread",
                    prec,
                    open_clip_run(shards, tok, args.out, args.open_clip_path, args.steps, args.batch, prec),
                )
            )
    if not args.skip_ray:
        from infra.ray_launcher import ensure_ray

        ensure_ray(num_cpus=4)
        for workers in (1, 2):
            for strategy in ("ddp", "deepspeed"):
                for prec in ("fp32", "bf16"):
                    name = f"Ray {workers} worker(s), {'ZeRO-2' if strategy == 'deepspeed' else 'DDP'}"
                    r = ray_run(shards, tok, args.out, workers, strategy, prec, args.steps, args.batch)
                    results.append((name, prec, r))
    print(f"\nbatch {args.batch}/worker, {args.steps} steps")
    print("| setup | precision | samples/s | data-wait | final loss | wall s |")
    print("|---|---|---|---|---|---|")
    for name, prec, r in results:
        if "error" in r:
            print(f"| {name} | {prec} | failed: {r['error'][-200:]!r} | | | |")
            continue
        dw = f"{r['data_wait_frac']:.2f}" if "data_wait_frac" in r else "-"
        fl = f"{r['final_loss']:.3f}" if "final_loss" in r else "-"
        wall = f"{r['wall_s']:.0f}" if "wall_s" in r else "-"
        print(f"| {name} | {prec} | {r['samples_per_s']:.0f} | {dw} | {fl} | {wall} |")
    (args.out / "results.json").write_text(json.dumps([[n, p, r] for n, p, r in results], indent=2))


if __name__ == "__main__":
    main()
