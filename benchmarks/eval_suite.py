"""Benchmark: our evaluation suite (one cached encode pass) vs CLIP_benchmark run task by task, same model and data.

Run from the project root:
    python benchmarks/eval_suite.py --model ViT-B-32 --classes 10 --per-class 30
Prints a JSON summary: wall time of zero-shot classification, retrieval and linear probe for both,
their ratio, and images/s of our encode pass in fp32 and bf16. The model has random weights
(throughput and harness overhead do not depend on training); both harnesses get the same model
object and tokenizer. CLIP_benchmark's linear probe asserts CUDA and calls `.cuda()`; on a CPU
machine it runs under a shim that maps those calls to the CPU (see `_cpu_as_cuda`). Its probe is
AdamW + cosine schedule with a weight-decay sweep, ours sklearn L-BFGS with a C sweep: the
comparison is wall time of the protocol each ships, not identical algorithms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages, not an installed copy

COLORS = {
    "red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
    "purple": (150, 40, 170), "cyan": (30, 210, 210), "orange": (250, 140, 20), "pink": (250, 150, 200),
    "brown": (120, 70, 20), "gray": (128, 128, 128), "black": (10, 10, 10), "white": (245, 245, 245),
}  # fmt: skip


def make_eval_dir(root: Path, n_classes: int, per_class: int, size: int, n_templates: int, seed: int = 0) -> Path:
    """A classification + retrieval set of noisy colour images (PNG), two captions per image."""
    from components.evaluate.dataset import load_templates

    rng = np.random.default_rng(seed)
    d = root / "colors"
    (d / "images").mkdir(parents=True)
    names = list(COLORS)[:n_classes]
    lines = ["image,label,captions"]
    for label, name in enumerate(names):
        for j in range(per_class):
            arr = np.clip(np.array(COLORS[name]) + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(d / "images" / f"{name}_{j}.png")
            caps = json.dumps([f"a {name} picture", f"noisy {name} image number {j}"]).replace('"', '""')
            lines.append(f'images/{name}_{j}.png,{label},"{caps}"')
    (d / "manifest.csv").write_text("\n".join(lines) + "\n")
    (d / "classnames.txt").write_text("\n".join(names) + "\n")
    (d / "templates.txt").write_text("\n".join(load_templates("imagenet")[:n_templates]) + "\n")
    (d / "dataset.json").write_text(json.dumps({"name": "colors", "task": "classification", "shift_of": None}))
    return d


class _Images(Dataset):
    def __init__(self, ds, idx, transform, captions: bool = False):
        self.ds, self.idx, self.transform, self.captions = ds, np.asarray(idx), transform, captions
        self.classes = ds.classnames

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int):
        j = int(self.idx[i])
        with Image.open(self.ds.images[j]) as im:
            x = self.transform(im.convert("RGB"))
        return (x, self.ds.captions[j]) if self.captions else (x, int(self.ds.labels[j]))


class _CudaName(str):
    """The string "cpu" that also compares equal to "cuda" (passes CLIP_benchmark's `assert device == 'cuda'`)."""

    def __eq__(self, other: object) -> bool:
        return other in ("cuda", "cpu")

    __hash__ = str.__hash__


@contextlib.contextmanager
def _cpu_as_cuda():
    """Make `.cuda()` a no-op on modules and tensors for the duration (CLIP_benchmark's probe is CUDA-only)."""
    saved = torch.nn.Module.cuda, torch.Tensor.cuda
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.nn.Module.cuda, torch.Tensor.cuda = saved


def _fix_numpy24_accuracy() -> None:
    """clip-benchmark 1.6's accuracy calls float() on a 1-element array, which numpy >= 2.4 refuses."""
    from clip_benchmark.metrics import linear_probe, zeroshot_classification

    def accuracy(output, target, topk=(1,)):
        pred = output.topk(max(topk), 1, True, True)[1].t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))
        return [float(correct[:k].reshape(-1).float().sum().item()) / len(target) for k in topk]

    zeroshot_classification.accuracy = accuracy
    linear_probe.accuracy = accuracy


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run_theirs(model, tokenizer, ds, transform, train_idx, val_idx, test_idx, batch_size: int, work: Path) -> dict:
    """CLIP_benchmark's three evaluate functions, each with its own encode pass, as its CLI runs them."""
    from clip_benchmark.metrics import linear_probe, zeroshot_classification, zeroshot_retrieval

    _fix_numpy24_accuracy()
    allidx = np.arange(len(ds))
    zs_loader = DataLoader(_Images(ds, allidx, transform), batch_size=batch_size)
    zs, t_zs = timed(
        lambda: zeroshot_classification.evaluate(model, zs_loader, tokenizer, ds.classnames, ds.templates, "cpu", amp=False)
    )
    rt_loader = DataLoader(
        _Images(ds, allidx, transform, captions=True),
        batch_size=batch_size,
        collate_fn=lambda b: (torch.stack([x for x, _ in b]), [c for _, c in b]),
    )
    rt, t_rt = timed(lambda: zeroshot_retrieval.evaluate(model, rt_loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10]))

    def lp_run():
        loaders = [DataLoader(_Images(ds, i, transform), batch_size=batch_size) for i in (train_idx, val_idx, test_idx)]
        with _cpu_as_cuda(), contextlib.redirect_stdout(None):
            return linear_probe.evaluate(
                model, loaders[0], loaders[2], fewshot_k=-1, batch_size=batch_size, num_workers=0, lr=0.1, epochs=10,
                model_id="bench", seed=0, feature_root=str(work / "clipb_features"), device=_CudaName("cpu"),
                val_dataloader=loaders[1], normalize=True, amp=False,
            )  # fmt: skip

    lp, t_lp = timed(lp_run)
    seconds = {"zeroshot_classification": t_zs, "zeroshot_retrieval": t_rt, "linear_probe": t_lp}
    seconds["total"] = t_zs + t_rt + t_lp
    lp_metrics = {k: lp[k] for k in ("lp_acc1", "weight_decay")}
    return {"seconds": seconds, "metrics": {"zeroshot_classification": zs, "zeroshot_retrieval": rt, "linear_probe": lp_metrics}}


def run_ours(model_dir: Path, eval_root: Path, out: Path, batch_size: int) -> dict:
    """The whole suite (cold cache), then again with the cache warm."""
    from components.evaluate.config import EvaluateConfig
    from components.evaluate.suite import evaluate_model

    cfg = EvaluateConfig(
        tasks=("zeroshot_classification", "zeroshot_retrieval", "linear_probe"), batch_size=batch_size, progress=False,
        device="cpu", cache_dir=str(out / "cache"),
    )  # fmt: skip
    cold, t_cold = timed(lambda: evaluate_model(model_dir, eval_root, out / "cold", cfg))
    warm, t_warm = timed(lambda: evaluate_model(model_dir, eval_root, out / "warm", cfg))
    assert warm.encoded == 0
    return {"seconds": {"total_cold_cache": t_cold, "total_warm_cache": t_warm}, "metrics": cold.metrics}


def encode_throughput(model, ds, batch_size: int, rounds: int = 3) -> dict:
    """Images/s of the encode pass (decode + transform + image tower), fp32 vs bf16 autocast.

    The two precisions alternate for `rounds` rounds and the median is reported, so a busy machine
    disturbs both alike; the best round is reported too.
    """
    from components.evaluate.cache import encode_images

    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    feats = {}
    for _ in range(rounds):
        for precision in times:
            feats[precision], t = timed(lambda p=precision: encode_images(model, ds.images, batch_size=batch_size, precision=p))
            times[precision].append(t)
    out = {
        p: {"images_per_s_median": len(ds) / float(np.median(ts)), "images_per_s_best": len(ds) / min(ts), "seconds": ts}
        for p, ts in times.items()
    }
    out["bf16_vs_fp32_max_abs_diff"] = float((feats["fp32"] - feats["bf16"]).abs().max())
    out["bf16_speedup_median"] = out["bf16"]["images_per_s_median"] / out["fp32"]["images_per_s_median"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ViT-B-32", help="clip_core config name (random weights)")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--image-size", type=int, default=64, help="side of the generated PNGs")
    ap.add_argument("--templates", type=int, default=80, help="how many of the 80 ImageNet templates")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from clip_core import Tokenizer, create_model, image_transform, save_checkpoint
    from components.evaluate.dataset import load_eval_dataset, probe_splits, stratified_split

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ds = load_eval_dataset(make_eval_dir(work / "eval", args.classes, args.per_class, args.image_size, args.templates))
        torch.manual_seed(0)
        model = create_model(args.model).eval()
        corpus = [t.format(c=c) for c in ds.classnames for t in ds.templates] + [c for caps in ds.captions for c in caps]
        tokenizer = Tokenizer.train(
            corpus, vocab_size=min(2048, model.cfg.text_cfg.vocab_size), context_length=model.context_length
        )
        model_dir = work / "model"
        save_checkpoint(model, model_dir / "model")
        tokenizer.save(model_dir / "tokenizer.json")

        # same splits as our suite: probe train/test, then val carved from train
        train, test = probe_splits(ds, 0.5, 0)
        val_rel, tr_rel = stratified_split(ds.labels[train], 0.2, 0)
        transform = image_transform(model.image_size, is_train=False)

        # warm-up (first-call kernel selection, bf16 kernels) so neither side pays it
        from components.evaluate.cache import encode_images, encode_texts

        for precision in ("fp32", "bf16"):
            encode_images(model, ds.images[: args.batch_size], batch_size=args.batch_size, precision=precision)
            encode_texts(model, tokenizer, corpus[: args.batch_size], precision=precision)
        ours = run_ours(model_dir, work / "eval", work / "ours", args.batch_size)
        theirs = run_theirs(model, tokenizer, ds, transform, train[tr_rel], train[val_rel], test, args.batch_size, work)
        throughput = encode_throughput(model, ds, args.batch_size)

    summary = {
        "command": "python benchmarks/eval_suite.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, no GPU"
        if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_1min_at_end": __import__("os").getloadavg()[0],
        "n_images": len(ds), "n_captions": sum(len(c) for c in ds.captions), "n_prompts": len(ds.classnames) * len(ds.templates),
        "ours": ours, "clip_benchmark": theirs, "encode": throughput,
        "metrics_agree": {
            task: all(ours["metrics"][f"colors/{task}/{k}"] == v for k, v in theirs["metrics"][task].items())
            for task in ("zeroshot_classification", "zeroshot_retrieval")
        },
        "speedup_cold": theirs["seconds"]["total"] / ours["seconds"]["total_cold_cache"],
        "speedup_warm": theirs["seconds"]["total"] / ours["seconds"]["total_warm_cache"],
    }  # fmt: skip
    print(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
