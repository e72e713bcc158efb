"""The GPU kit's measurements: machine facts, a CLIP train step against open_clip, eval encode against CLIP_benchmark.

Usage (benchmarks/gpu_check.sh calls these; `--small` is its CPU dry run: tiny model, small batches):
    python benchmarks/gpu_bench.py env   --out DIR [--small]
    python benchmarks/gpu_bench.py train --out DIR [--small]
    python benchmarks/gpu_bench.py eval  --out DIR [--small]
Each writes DIR/<command>.json and prints a markdown table.

train: ViT-B-32 at 224 px, batch 256, bf16. Ours is the training loop's own engine (`components.train.engine`:
DDP engine, and DeepSpeed ZeRO-2 over a 1-rank NCCL group) with the loop's loss; the peer is open_clip's model and
`open_clip.loss.ClipLoss` with the same weights, stepped as open_clip_train's `train_one_epoch` does with
`--precision amp_bf16 --grad-clip-norm 1.0` (autocast, backward, clip, AdamW, clamp logit_scale). On one GPU the
DDP engine holds no DDP wrapper (world size 1), exactly as the training loop runs there. Two modes:
compute (the same random tensors on the GPU every step) and data (batches from the training loop's webdataset
loader over local JPEG shards, the same loader for both, so only the model step differs).
FLOPs per step are counted by `torch.utils.flop_counter.FlopCounterMode` over one forward + backward of our
model at the benchmark batch (matmuls, convolutions and attention, 2 FLOPs per multiply-add; the loss, norms and
the optimiser are not counted); MFU = FLOPs per step x steps/s / 790 TFLOP/s, the bf16 dense matmul rate measured
on this H200 kind (`env` re-measures it and records its own figure beside).

eval: images/s of `components.evaluate.cache.encode_images` (bf16) against CLIP_benchmark's
`zeroshot_classification.run_classification` loop on the same model, images and DataLoader settings; and
compute-only encode of clip_core's image tower against open_clip's with the same weights.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from gpu_parts import (  # noqa: E402  (beside this script: on sys.path when it runs)
    Ours,
    build_contestant,
    count_step_flops,
    pick_device,
    sync,
    synthetic_batch,
    time_contestant,
    write_jpegs,
    write_shards,
)

PEAK_TFLOPS = 790.0  # bf16 dense, 8192^3 matmul on random data, H200 (see the module docstring)
PACKAGES = ("torch", "torchvision", "numpy", "deepspeed", "pydantic", "webdataset", "open_clip_torch", "clip-benchmark",
            "safetensors", "tokenizers", "scikit-learn", "pyarrow", "pandas", "ray")  # fmt: skip


def _write(out: Path, name: str, result: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))


# ---------------------------------------------------------------------------------------------------- env


def matmul_tflops(device: torch.device, n: int, reps: int = 10) -> float:
    """Mean bf16 TFLOP/s of an n^3 matmul on random data (3 warm-ups)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def range_check() -> list[dict]:
    """Each pyproject dependency that is installed here, its version and whether the project's range accepts it."""
    import tomllib
    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    rows = []
    for dep in deps:
        req = Requirement(dep)
        try:
            version = md.version(req.name)
        except md.PackageNotFoundError:
            rows.append({"package": req.name, "range": str(req.specifier), "installed": None, "accepted": None})
            continue
        ok = req.specifier.contains(version.split("+")[0], prereleases=True)
        rows.append({"package": req.name, "range": str(req.specifier), "installed": version, "accepted": ok})
    return rows


def cmd_env(args: argparse.Namespace) -> dict:
    device = pick_device()
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    facts = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "cpus": os.cpu_count(),
        "torch_cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "packages": versions,
        "pyproject_ranges": range_check(),
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(0)
        facts.update(sms=p.multi_processor_count, gpu_mem_gib=round(p.total_memory / 2**30, 1),
                     capability=f"{p.major}.{p.minor}", nccl=".".join(map(str, torch.cuda.nccl.version())))  # fmt: skip
    facts["nccl_available"] = torch.distributed.is_nccl_available()
    facts["bf16_matmul_tflops"] = round(matmul_tflops(device, 8192 if device.type == "cuda" else 512), 1)
    _write(args.out, "env", facts)
    refused = [r for r in facts["pyproject_ranges"] if r["accepted"] is False]
    print(f"python {facts['python']}, torch {versions['torch']} (CUDA {facts['torch_cuda']}), device {facts['device']}")
    print(f"bf16 matmul: {facts['bf16_matmul_tflops']} TFLOP/s measured; MFU below uses {PEAK_TFLOPS}")
    print("pyproject ranges: " + ("all installed versions accepted" if not refused else f"REFUSED {refused}"))
    return facts


def cmd_train(args: argparse.Namespace) -> dict:
    import clip_core
    from components.train.data import StreamSpec, build_loader

    device = pick_device()
    small = args.small
    model_name, batch = ("tiny", 8) if small else ("ViT-B-32", 256)
    warmup, steps = (2, 4) if small else (10, 30)
    rounds = 1 if small else 2
    data_workers = 2 if small else max(1, (os.cpu_count() or 2) - 2)
    torch.manual_seed(0)
    cfg = clip_core.get_model_config(model_name)
    state = clip_core.create_model(cfg).state_dict()
    flops = count_step_flops(model_name, batch, device)
    print(f"{model_name}, batch {batch}, bf16, {device}: {flops / 1e12:.2f} TFLOP per step (FlopCounterMode)", flush=True)

    fixed = synthetic_batch(cfg, batch, device)

    def compute_batches():
        while True:
            yield fixed

    shard_dir = Path(args.work) / "train_shards"
    n_shards = 2 * data_workers
    urls = write_shards(shard_dir, n_shards, max(16, (batch * 12) // n_shards), (160, 200) if small else (256, 400))
    tokenizer = clip_core.Tokenizer.train([c for _, c in write_jpegs(64, (8, 9))] * 4, vocab_size=512,
                                          context_length=cfg.text_cfg.context_length)  # fmt: skip
    tf = clip_core.image_transform(cfg.vision_cfg.image_size, is_train=True)

    def data_batches():
        loader = build_loader(StreamSpec(urls, 0, 0, 0, 1), tf, tokenizer, batch, data_workers, batch)
        for images, tokens in loader:
            yield images.to(device), tokens.to(device)

    who = ["ddp", "deepspeed", "open_clip"]
    results: dict[str, dict[str, list[dict]]] = {}
    for mode, source in (("compute", compute_batches), ("data", data_batches)):
        for r in range(rounds if mode == "compute" else 1):
            for w in who if r % 2 == 0 else reversed(who):
                batches = source()
                res = time_contestant(lambda w=w: build_contestant(w, model_name, state, batch, device), batches,
                                      warmup, steps, batch, device)  # fmt: skip
                batches.close()
                results.setdefault(mode, {}).setdefault(w, []).append(res)
                sps, peak = res["samples_per_s"], res["peak_mem_gib"]
                print(f"  {mode:7s} {w:10s} {sps:9.1f} samples/s  peak {peak:.2f} GiB", flush=True)

    rows = []
    for mode, by_who in results.items():
        peer = statistics.median(x["samples_per_s"] for x in by_who["open_clip"])
        for w, runs in by_who.items():
            sps = statistics.median(x["samples_per_s"] for x in runs)
            rows.append({
                "mode": mode, "who": w, "samples_per_s": round(sps, 1), "vs_open_clip": round(sps / peer, 3),
                "peak_mem_gib": round(max(x["peak_mem_gib"] for x in runs), 2),
                "mfu": round(flops * sps / batch / (PEAK_TFLOPS * 1e12), 4) if device.type == "cuda" else None,
            })  # fmt: skip
    result = {"model": model_name, "batch": batch, "precision": "bf16", "device": str(device), "steps": steps,
              "warmup": warmup, "rounds": rounds, "data_workers": data_workers, "flops_per_step": flops,
              "peak_tflops": PEAK_TFLOPS, "rows": rows}  # fmt: skip
    _write(args.out, "train", result)
    print("| mode | who | samples/s | vs open_clip | peak GiB | MFU |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        print(f"| {r['mode']} | {r['who']} | {r['samples_per_s']} | {r['vs_open_clip']}x | {r['peak_mem_gib']} | {mfu} |")
    return result


# ---------------------------------------------------------------------------------------------------- eval


def clip_benchmark_loop(model, paths: list[str], transform, batch: int, workers: int, device: torch.device):
    """CLIP_benchmark 1.6's zero-shot classification loop over our images: (logits (N, K), seconds)."""
    from clip_benchmark.metrics import zeroshot_classification as zc
    from torch.utils.data import DataLoader

    from components.evaluate.images import open_image

    class Files(torch.utils.data.Dataset):  # (image, target) as CLIP_benchmark's loaders yield; the index as target
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int):
            return transform(open_image(paths[i])), i

    loader = DataLoader(Files(), batch_size=batch, num_workers=workers, shuffle=False)
    g = torch.Generator().manual_seed(1)
    classifier = torch.nn.functional.normalize(torch.randn(model.cfg.embed_dim, 10, generator=g), dim=0)  # (D, K)
    classifier = classifier.to(device)
    # its loop opens `torch.autocast(device, enabled=amp)` with the device type's default dtype (fp16 on CUDA);
    # created inside this bf16 context it inherits bf16, so both loops run the same precision
    with torch.autocast(device.type, dtype=torch.bfloat16):
        t0 = time.perf_counter()
        logits, _ = zc.run_classification(model, classifier, loader, device.type, amp=True)
        sync(device)
    return logits.float(), time.perf_counter() - t0, classifier


def cmd_eval(args: argparse.Namespace) -> dict:
    import clip_core
    from components.evaluate.cache import encode_images

    device = pick_device()
    small = args.small
    model_name, batch, n = ("tiny", 16, 64) if small else ("ViT-B-32", 256, 8192)
    workers = 2 if small else max(1, (os.cpu_count() or 2) - 2)
    img_dir = Path(args.work) / "eval_images"
    img_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (jpg, _) in enumerate(write_jpegs(n, (160, 200) if small else (256, 500), seed=1)):
        p = img_dir / f"{i:06d}.jpg"
        p.write_bytes(jpg)
        paths.append(str(p))
    torch.manual_seed(0)
    model = clip_core.create_model(model_name).to(device).eval()
    tf = clip_core.image_transform(model.cfg.vision_cfg.image_size, is_train=False)

    rows, agree = [], None
    for _ in range(1 if small else 2):  # the first round also warms up kernels and the page cache
        t0 = time.perf_counter()
        feats = encode_images(model, paths, tf, batch_size=batch, num_workers=workers, precision="bf16")
        ours_s = time.perf_counter() - t0
        logits, theirs_s, classifier = clip_benchmark_loop(model, paths, tf, batch, workers, device)
        agree = float(((feats @ classifier.float().cpu()).argmax(1) == logits.cpu().argmax(1)).float().mean())
        rows.append({"ours_images_per_s": n / ours_s, "clip_benchmark_images_per_s": n / theirs_s})
    last = rows[-1]

    # compute only: the image tower alone on tensors already on the device, clip_core vs open_clip (same weights)
    import open_clip

    if model_name not in open_clip.list_models():
        open_clip.add_model_config(str(clip_core.config.CONFIG_DIR / f"{model_name}.json"))
    peer = open_clip.create_model(model_name, pretrained=None)
    peer.load_state_dict(model.state_dict())
    peer.to(device).eval()
    x = torch.randn(batch, 3, model.cfg.vision_cfg.image_size, model.cfg.vision_cfg.image_size, device=device)
    compute = {}
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        for name, m in (("clip_core", model), ("open_clip", peer)):
            for _ in range(3):
                m.encode_image(x)
            sync(device)
            reps = 3 if small else 30
            t0 = time.perf_counter()
            for _ in range(reps):
                m.encode_image(x)
            sync(device)
            compute[name] = batch * reps / (time.perf_counter() - t0)
    result = {"model": model_name, "images": n, "batch": batch, "workers": workers, "device": str(device),
              "rounds": rows, "top1_agreement_with_clip_benchmark": agree,
              "compute_images_per_s": compute}  # fmt: skip
    _write(args.out, "eval", result)
    print("| eval encode (bf16) | ours | CLIP_benchmark loop | ours / peer |")
    print("|---|---|---|---|")
    o, t = last["ours_images_per_s"], last["clip_benchmark_images_per_s"]
    setting = f"{model_name}, {n} JPEGs from disk, batch {batch}, {workers} workers"
    print(f"| {setting} | {o:.0f} img/s | {t:.0f} img/s | {o / t:.2f}x |")
    c, p = compute["clip_core"], compute["open_clip"]
    print(f"| image tower only, tensors on {device.type} | {c:.0f} img/s | open_clip model {p:.0f} img/s | {c / p:.2f}x |")
    print(f"predictions agree with CLIP_benchmark's loop on {100 * agree:.1f}% of images")
    return result


def cmd_ds(args: argparse.Namespace) -> dict:
    """Where DeepSpeed's step time goes on one device: ZeRO 0-3 against the DDP engine, and a profile of each step."""
    from torch.profiler import ProfilerActivity, profile

    import clip_core

    device = pick_device()
    model_name, batch, warmup, steps = ("tiny", 8, 2, 4) if args.small else ("ViT-B-32", 256, 10, 20)
    torch.manual_seed(0)
    cfg = clip_core.get_model_config(model_name)
    state = clip_core.create_model(cfg).state_dict()
    fixed = synthetic_batch(cfg, batch, device)

    def batches():
        while True:
            yield fixed

    # ZeRO-3 goes last: its engine replaces torch.nn.functional.linear process-wide (DeepSpeed's
    # zero3_linear_wrap) and the patch outlives the engine, so anything measured after it is slowed too
    variants = [
        ("DDP engine", "ddp", 0, None),
        ("ZeRO-0", "deepspeed", 0, None),
        ("ZeRO-0, bf16 immediate_grad_update", "deepspeed", 0, {"bf16": {"immediate_grad_update": True}}),
        ("ZeRO-1", "deepspeed", 1, None),
        ("ZeRO-2 (template)", "deepspeed", 2, None),
        ("ZeRO-2, gradient_clipping 0", "deepspeed", 2, {"gradient_clipping": 0.0}),
        ("ZeRO-2, overlap_comm", "deepspeed", 2, {"zero_optimization": {"overlap_comm": True}}),
        ("ZeRO-2, 5e8 buckets", "deepspeed", 2, {"zero_optimization": {"reduce_bucket_size": 500_000_000,
                                                                       "allgather_bucket_size": 500_000_000}}),
    ]  # fmt: skip
    rows = []

    def measure(label, strategy, stage, over):
        res = time_contestant(lambda: Ours(model_name, state, batch, device, strategy, stage, over), batches(), warmup,
                              steps, batch, device)  # fmt: skip
        rows.append({"variant": label, "strategy": strategy, "stage": stage, "overrides": over, **res})
        print(f"  {label:38s} {res['samples_per_s']:9.1f} samples/s  peak {res['peak_mem_gib']:.2f} GiB", flush=True)

    for v in variants:
        measure(*v)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    profiles = {}
    for strategy, stage in (("ddp", 0), ("deepspeed", 2)):
        c = Ours(model_name, state, batch, device, strategy, stage)
        for _ in range(3):
            c.step(*fixed)
        sync(device)
        with profile(activities=activities) as prof:
            for _ in range(5):
                c.step(*fixed)
            sync(device)
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        table = prof.key_averages().table(sort_by=sort, row_limit=15, max_name_column_width=60)
        cpu_table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60)
        launches = sum(e.count for e in prof.key_averages() if e.key in ("cudaLaunchKernel", "cuLaunchKernelEx"))
        profiles[f"{strategy}{stage}"] = {"by_device_time": table, "by_cpu_time": cpu_table,
                                          "kernel_launches_per_step": launches / 5}  # fmt: skip
        print(f"== profile {strategy} ZeRO-{stage}: {launches / 5:.0f} kernel launches per step\n{cpu_table}", flush=True)
        del c
    measure("ZeRO-3", "deepspeed", 3, None)
    result = {"model": model_name, "batch": batch, "device": str(device), "rows": rows, "profiles": profiles}
    _write(args.out, "ds", result)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["env", "train", "eval", "ds"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", default=os.environ.get("TMPDIR", "/tmp") + "/gpu_kit_work", help="scratch for shards/images")
    ap.add_argument("--small", action="store_true", help="CPU dry-run sizes")
    args = ap.parse_args()
    {"env": cmd_env, "train": cmd_train, "eval": cmd_eval, "ds": cmd_ds}[args.command](args)


if __name__ == "__main__":
    main()
