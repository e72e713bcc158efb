"""The evaluation suite: encode every eval set once (cached), run every applicable task, write JSON, tables, plots."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.io import json_safe, write_atomic

from .cache import EmbeddingCache, cached_image_features, cached_text_features, encode_images, valid_rows
from .config import EvaluateConfig
from .dataset import EvalDataset, load_eval_dataset, probe_splits
from .linear_probe import LinearProbeResult, fewshot_curve, linear_probe, plot_fewshot
from .readers import resolve_datasets
from .results import benchmark_csv, flat_metrics, results_tables
from .retrieval import flatten_captions, retrieval_metrics
from .robustness import ShiftAccuracy, effective_robustness, plot_robustness
from .zeroshot import (
    build_classifier,
    classification_metrics,
    classifier_from_prompt_features,
    evaluate_zeroshot,
    multilabel_metrics,
    plot_confusion,
    prompts,
    zeroshot_logits,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateResult:
    """Where the results went, every (dataset, task) record, the flat DVC metrics and cache counts."""

    out_dir: Path
    records: list[dict[str, Any]]
    metrics: dict[str, float]
    encoded: int  # eval sets encoded in this run
    cached: int  # eval sets read from the cache
    table_markdown: str = ""
    plots: list[Path] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    """ "auto" -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_model_dir(
    model_dir: str | Path,
    device: torch.device | str = "cpu",
    model_config: str | Path | None = None,
    tokenizer: str | Path | None = None,
):
    """(model in eval mode, tokenizer, identity sha256) from any input `clip_core.load_model` reads.

    That is this project's model directory (identity: sha256 of model.safetensors, as before, so
    caches stay valid), an open_clip checkpoint file or hub directory, or OpenAI's released file;
    `model_config` / `tokenizer` where the weights do not say. The model carries its preprocessing
    as `model.preprocess` (a `clip_core.PreprocessConfig`).
    """
    from clip_core import load_model

    loaded = load_model(model_dir, model_config=model_config, tokenizer=tokenizer, device=device)
    loaded.model.preprocess = loaded.preprocess
    return loaded.model, loaded.tokenizer, loaded.sha256


def _git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass
class _Run:
    """State shared by the tasks of one suite run."""

    model: torch.nn.Module
    tokenizer: Any
    model_name: str
    sha: str
    text_id: str  # weights + tokenizer identity of cached text features
    text_cache: EmbeddingCache
    cfg: EvaluateConfig
    device: torch.device
    out_dir: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    probes: dict[str, tuple[LinearProbeResult, np.ndarray]] = field(default_factory=dict)  # name -> (probe, train idx)
    zs_classifiers: dict[str, torch.Tensor] = field(default_factory=dict)

    def record(self, ds: EvalDataset, task: str, metrics: dict[str, Any], **extra: Any) -> None:
        rec = {
            "dataset": ds.name,
            "model": self.model_name,
            "pretrained": self.sha[:12],
            "task": task,
            "metrics": json_safe(metrics),
            "language": "en",
            "format": ds.format,
            "n_corrupt": ds.n_corrupt,  # images left out because they could not be decoded
            **json_safe(extra),
        }
        self.records.append(rec)
        write_atomic(self.out_dir / "results" / f"{ds.name}__{task}.json", json.dumps(rec, indent=2))

    def probe_kwargs(self) -> dict[str, Any]:
        c = self.cfg
        return dict(
            backend=c.probe_backend,
            val_fraction=c.probe_val_fraction,
            c_min=c.probe_c_min,
            c_max=c.probe_c_max,
            c_steps=c.probe_c_steps,
            c_init_steps=c.probe_c_init_steps,
            max_iter=c.probe_max_iter,
            seed=c.seed,
            device=str(self.device),
        )


def _zeroshot_classifier(run: _Run, ds: EvalDataset) -> torch.Tensor:
    texts = prompts(ds.classnames, ds.templates)
    feats_txt = cached_text_features(
        run.text_cache, run.model, run.tokenizer, run.text_id, f"{ds.name}-prompts", texts, run.cfg.precision
    )
    return classifier_from_prompt_features(feats_txt, len(ds.classnames), len(ds.templates))


def _run_multilabel(run: _Run, ds: EvalDataset, feats: np.ndarray) -> None:
    rows = ds.eval_rows()
    logits = zeroshot_logits(feats[rows], _zeroshot_classifier(run, ds))
    metrics = multilabel_metrics(logits, ds.targets[rows])
    run.record(ds, "zeroshot_classification", metrics, n_images=len(rows), n_classes=len(ds.classnames))


def _run_classification(run: _Run, ds: EvalDataset, feats: np.ndarray) -> None:
    tasks, cfg = run.cfg.tasks, run.cfg
    n_classes = len(ds.classnames)
    if "zeroshot_classification" in tasks:
        clf = _zeroshot_classifier(run, ds)
        run.zs_classifiers[ds.name] = clf
        rows = ds.eval_rows()  # every row, or the format's test split
        zs = evaluate_zeroshot(feats[rows], ds.labels[rows], clf)
        pred_csv = run.out_dir / "results" / ds.name / "zeroshot_predictions.csv"
        save_predictions(pred_csv, ds, zs.logits.argmax(dim=1).numpy(), rows)
        png = plot_confusion(
            zs.confusion, ds.classnames, run.out_dir / "plots" / f"{ds.name}__confusion.png", f"{ds.name}: zero-shot"
        )
        run.plots.append(png)
        run.record(
            ds,
            "zeroshot_classification",
            zs.metrics,
            n_images=len(rows),
            n_classes=n_classes,
            n_templates=len(ds.templates),
            confusion_matrix=zs.confusion.tolist(),
        )
    if ds.shift_of is not None or not ({"linear_probe", "fewshot"} & set(tasks)):
        return
    train, test = probe_splits(ds, cfg.probe_train_fraction, cfg.seed)
    if len(np.unique(ds.labels[train])) < 2:
        return
    Xtr, ytr, Xte, yte = feats[train], ds.labels[train], feats[test], ds.labels[test]
    if "linear_probe" in tasks:
        probe = linear_probe(Xtr, ytr, Xte, yte, n_classes, **run.probe_kwargs())
        run.probes[ds.name] = (probe, train)
        run.record(ds, "linear_probe", probe.metrics, sweep=probe.sweep, backend=cfg.probe_backend)
    if "fewshot" in tasks:
        rows = fewshot_curve(Xtr, ytr, Xte, yte, n_classes, cfg.fewshot_ks, **run.probe_kwargs())
        zs_test = None
        if ds.name in run.zs_classifiers:
            zs_test = classification_metrics(zeroshot_logits(Xte, run.zs_classifiers[ds.name]), yte)["acc1"]
        png = run.out_dir / "plots" / f"{ds.name}__fewshot.png"
        plot_fewshot(rows, zs_test, png, f"{ds.name}: few-shot linear probe")
        run.plots.append(png)
        run.record(ds, "fewshot", {f"lp_acc1@{r['k']}shot": r["lp_acc1"] for r in rows}, curve=rows, zeroshot_acc1_test=zs_test)


def save_predictions(path: Path, ds: EvalDataset, pred: np.ndarray, rows: np.ndarray | None = None) -> Path:
    """Per-sample zero-shot predictions (dataset order) for the overlap audit: index, key, image, label, prediction, correct."""
    import pandas as pd

    rows = np.arange(len(ds)) if rows is None else rows
    keys = [ds.keys[i] for i in rows] if ds.keys else [""] * len(rows)
    df = pd.DataFrame({"index": rows, "key": keys, "image": [ds.images[i] for i in rows]})
    df["label"], df["prediction"] = ds.labels[rows], pred
    df["correct"] = df["label"] == df["prediction"]
    return write_atomic(path, df.to_csv(index=False))


def _run_retrieval(run: _Run, ds: EvalDataset, feats: np.ndarray) -> None:
    rows = ds.eval_rows()
    texts, owner = flatten_captions([ds.captions[i] for i in rows])
    txt = cached_text_features(
        run.text_cache, run.model, run.tokenizer, run.text_id, f"{ds.name}-captions", texts, run.cfg.precision
    )
    metrics = retrieval_metrics(feats[rows], txt, owner, run.cfg.recall_ks)
    run.record(ds, "zeroshot_retrieval", metrics, n_images=len(rows), n_texts=len(texts))


def _shift_accuracy(
    ds: EvalDataset, x: np.ndarray, y: np.ndarray, clf: torch.Tensor, probe: LinearProbeResult | None
) -> ShiftAccuracy:
    """Zero-shot (base classifier) and probe (trained on the base set) top-1 on some images of `ds`."""
    zs = classification_metrics(zeroshot_logits(x, clf), y)["acc1"]
    lp = None
    if probe is not None and probe.model is not None:
        lp = classification_metrics(probe.model.logits(x, clf.shape[1]), y)["acc1"]
    return ShiftAccuracy(ds.name, zs, lp)


def _run_robustness(run: _Run, datasets: list[EvalDataset], feats: dict[str, np.ndarray]) -> None:
    for base in datasets:
        shifts = [d for d in datasets if d.shift_of == base.name and d.has_classification]
        if not shifts or base.name not in run.zs_classifiers:
            continue
        clf = run.zs_classifiers[base.name]
        probe, train_idx = run.probes.get(base.name, (None, None))
        # base accuracy on the probe's test split (so zero-shot and probe see the same images)
        test_idx = np.setdiff1d(np.arange(len(base)), train_idx) if train_idx is not None else np.arange(len(base))
        train_keys = {base.keys[i] for i in train_idx} if (train_idx is not None and base.keys) else set()

        base_acc = _shift_accuracy(base, feats[base.name][test_idx], base.labels[test_idx], clf, probe)
        rows, shifted = {}, []
        for s in shifts:
            keep = np.array([i for i in range(len(s)) if not (s.keys and s.keys[i] in train_keys)], dtype=np.int64)
            acc = _shift_accuracy(s, feats[s.name][keep], s.labels[keep], clf, probe)
            shifted.append(acc)
            rows[s.name] = effective_robustness(base_acc, acc)
        png = plot_robustness(base_acc, shifted, run.out_dir / "plots" / f"{base.name}__robustness.png")
        run.plots.append(png)
        flat = {f"{name}/{k}": v for name, r in rows.items() for k, v in r.items() if v is not None}
        flat.update(base_zeroshot_acc1=base_acc.zeroshot_acc1, base_linear_probe_acc1=base_acc.linear_probe_acc1)
        run.record(base, "robustness", flat, shifts=rows)


def image_encoder(engine: str, device: str) -> Callable[..., torch.Tensor]:
    """The image encoder of `cached_image_features`: this process (data.engine local) or Ray Data actors (ray)."""
    if engine == "ray":
        from .ray_encoder import encode_images_ray

        return functools.partial(encode_images_ray, device=device)
    return encode_images


def evaluate_model(
    model_dir: str | Path, eval_root: str | Path, out_dir: str | Path, cfg: EvaluateConfig, engine: str = "local"
) -> EvaluateResult:
    """Run the whole suite for one model directory over every eval set under `eval_root`; write under `out_dir`.

    `engine` "ray" (data.engine) encodes the images on Ray Data actors (ray_encoder.py; Ray must be up), into the same
    embedding cache; texts and the tasks run here."""
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model, tokenizer, sha = load_model_dir(model_dir, device)
    probing = bool({"linear_probe", "fewshot"} & set(cfg.tasks))
    datasets = resolve_datasets(eval_root, cfg.datasets, with_train=probing)
    if not datasets:
        raise FileNotFoundError(
            f"{eval_root}: no eval datasets (directories with manifest.csv); or list them in evaluate.datasets"
        )
    cache = EmbeddingCache(cfg.cache_dir or out_dir / "cache")
    # the tokenizer's own content, not a file: imported models (open_clip/OpenAI files) have no tokenizer.json
    text_id = sha + hashlib.sha256(tokenizer.backend.to_str().encode()).hexdigest()
    text_cache = EmbeddingCache(cache.root)  # own counters: `encoded`/`cached` count image sets
    run = _Run(model, tokenizer, Path(model_dir).name, sha, text_id, text_cache, cfg, device, out_dir)
    feats = {}
    for i, ds in enumerate(datasets):
        f = cached_image_features(
            cache,
            model,
            sha,
            ds.name,
            ds.image_source(),
            "all",
            ds.fingerprint,
            cfg.batch_size,
            cfg.num_workers,
            cfg.precision,
            cfg.progress,
            image_encoder(engine, cfg.device),
        )
        ok = valid_rows(f)
        datasets[i] = ds = ds.without(np.flatnonzero(~ok)) if not ok.all() else ds
        feats[ds.name] = f[ok]
        if ds.n_corrupt:
            log.warning("%s: %d unreadable image(s) left out (n_corrupt in its results)", ds.name, ds.n_corrupt)
    for ds in datasets:
        if ds.has_classification:
            _run_classification(run, ds, feats[ds.name])
        if ds.has_multilabel and "zeroshot_classification" in cfg.tasks:
            _run_multilabel(run, ds, feats[ds.name])
        if ds.has_retrieval and "zeroshot_retrieval" in cfg.tasks:
            _run_retrieval(run, ds, feats[ds.name])
    if "robustness" in cfg.tasks:
        _run_robustness(run, datasets, feats)

    metrics = flat_metrics(run.records)
    md, html = results_tables(run.records)
    write_atomic(out_dir / "results.json", json.dumps(run.records, indent=2))
    write_atomic(out_dir / "results.md", md)
    write_atomic(out_dir / "results.html", html)
    write_atomic(out_dir / "benchmark.csv", benchmark_csv(run.records))  # `clip_benchmark build`'s table format
    write_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    write_atomic(
        out_dir / "run.json",
        json.dumps(
            json_safe(
                {
                    "model_dir": str(model_dir),
                    "checkpoint_sha256": sha,
                    "config": dataclasses.asdict(cfg),
                    "git_revision": _git_revision(),
                    "datasets": {
                        d.name: {"format": d.format, "fingerprint": d.fingerprint, "n_corrupt": d.n_corrupt} for d in datasets
                    },
                    "cache": {
                        "encoded": cache.misses,
                        "cached": cache.hits,
                        "text_encoded": text_cache.misses,
                        "text_cached": text_cache.hits,
                    },
                }
            ),
            indent=2,
        ),
    )
    return EvaluateResult(out_dir, run.records, metrics, cache.misses, cache.hits, md, run.plots)


def quick_zeroshot_accuracy(
    model: torch.nn.Module,
    tokenizer: Any,
    eval_dir: str | Path,
    batch_size: int = 64,
    precision: str = "fp32",
    max_images: int | None = None,
) -> dict[str, float]:
    """In-training check: zero-shot metrics of an in-memory model on one eval dir (no cache, no files written)."""
    ds = load_eval_dataset(eval_dir)
    if not ds.has_classification:
        raise ValueError(f"{eval_dir}: not a classification set (needs label column and classnames.txt)")
    n = len(ds) if max_images is None else min(max_images, len(ds))
    feats = encode_images(model, ds.images[:n], batch_size=batch_size, precision=precision)
    ok = valid_rows(feats)  # unreadable images are left out
    clf = build_classifier(model, tokenizer, ds.classnames, ds.templates, precision)
    return classification_metrics(zeroshot_logits(feats[ok], clf), ds.labels[:n][ok])
