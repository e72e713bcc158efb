"""Run a bias probe on a model: zero-shot classify a group-annotated dataset under each label-set variant, write the report."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components.evaluate.cache import EmbeddingCache, cached_image_features, cached_text_features, file_sha256, valid_rows
from components.evaluate.dataset import EvalDataset, load_eval_dataset, stratified_split
from components.evaluate.suite import image_encoder, load_model_dir, resolve_device
from components.evaluate.zeroshot import classifier_from_prompt_features, prompts, zeroshot_logits
from components.io import json_safe, write_atomic

from .analysis import analyse
from .config import BiasConfig
from .definition import ProbeDefinition, load_probe
from .gate import BiasGate, check_gate
from .report import findings, flat_summary, plot_all, render_html


@dataclass(frozen=True)
class BiasResult:
    """The report's numbers, flat summary, plain-language findings and gate verdict, and where they were written."""

    out_dir: Path
    result: dict
    summary: dict[str, float]
    findings: list[str]
    gate: BiasGate


def load_groups(ds: EvalDataset, probe: ProbeDefinition) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Attribute -> value per image from the manifest's `group_<attr>` columns, recoded as the probe says."""
    manifest = f"{ds.root}/manifest.csv" if ds.format == "manifest" else f"{ds.root} ({ds.format})"
    df = pd.DataFrame(ds.columns, dtype=object)
    attrs = {}
    for a in probe.attributes:
        col = f"group_{a}"
        if col not in df.columns:
            have = [c for c in df.columns if c.startswith("group_")]
            raise ValueError(f"{manifest}: no column {col!r} for attribute {a!r} of probe {probe.name} (group columns: {have})")
        values = df[col].astype(str)
        if a in probe.recode:
            values = values.map(lambda v, m=probe.recode[a]: m.get(v, v))
        attrs[a] = values.to_numpy(dtype=object)
    return attrs, df


def true_labels(ds: EvalDataset, probe: ProbeDefinition, df: pd.DataFrame) -> list[str | None]:
    """True class name per image: the probe's `true_label` format over manifest columns, else classnames.txt[label]."""
    if probe.true_label:
        try:
            return [probe.true_label.format(**row) for row in df.to_dict("records")]
        except KeyError as e:
            raise ValueError(f"{probe.source}: true_label {probe.true_label!r} names column {e} not in the manifest") from e
    if ds.labels is not None and ds.classnames:
        return [ds.classnames[i] for i in ds.labels]
    return [None] * len(ds)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-") or "x"


def zeroshot_predictions(feats: np.ndarray, prompt_features: torch.Tensor, labels: Sequence[str], n_templates: int) -> list[str]:
    """Predicted label name per image: the evaluation's zero-shot classifier (prompt-ensembled, cosine argmax)."""
    clf = classifier_from_prompt_features(prompt_features, len(labels), n_templates)  # (D, C)
    return [labels[i] for i in zeroshot_logits(feats, clf).argmax(1).numpy()]


def linear_probe_quantity(feats: np.ndarray, true: list[str | None], cfg: BiasConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The paper's "LR CLIP": logistic regression on the true labels (train split), correctness on the held-out rest."""
    from components.evaluate.linear_probe import linear_probe

    known = np.array([t is not None for t in true])
    names = sorted({t for t in true if t is not None})
    if len(names) < 2:
        return {}
    y_all = np.array([names.index(t) if t is not None else -1 for t in true])
    idx = np.flatnonzero(known)
    train_rel, test_rel = stratified_split(y_all[idx], cfg.probe_train_fraction, cfg.seed)
    train, test = idx[train_rel], idx[test_rel]
    res = linear_probe(feats[train], y_all[train], feats[test], y_all[test], len(names), c_steps=25, seed=cfg.seed)
    pred = res.model.logits(feats, len(names)).argmax(1).numpy()
    is_test = np.zeros(len(true))
    is_test[test] = 1.0
    return {"LR/accuracy": ((pred == y_all).astype(float) * is_test, is_test)}


def run_bias_probe(
    model_dir: str | Path,
    dataset_dir: str | Path,
    out_dir: str | Path,
    cfg: BiasConfig,
    cache_dir: str | Path,
    engine: str = "local",
) -> BiasResult:
    """Classify every image under each label set, analyse per group, write OUT/bias/{bias,summary}.json, HTML, plots.

    `engine` "ray" (data.engine): the images are encoded on Ray Data actors, into the same cache (Ray must be up)."""
    out_dir = Path(out_dir)
    probe = load_probe(cfg.probe)
    ds = load_eval_dataset(dataset_dir)
    attrs, df = load_groups(ds, probe)
    true = true_labels(ds, probe, df)
    templates = list(probe.templates or ds.templates)

    model, tokenizer, sha = load_model_dir(model_dir, resolve_device(cfg.device))
    cache = EmbeddingCache(cache_dir)
    encode = image_encoder(engine, cfg.device)
    feats = cached_image_features(
        cache, model, sha, ds.name, ds.images, "all", ds.manifest_sha256, cfg.batch_size, 0, cfg.precision, cfg.progress, encode
    )  # (N, D): the evaluation's features when it ran with the same precision
    bad = [ds.images[i] for i in np.flatnonzero(~valid_rows(feats))]
    if bad:  # group statistics over a silently smaller set would mislead: fix or drop the rows first
        raise ValueError(
            f"{dataset_dir}: {len(bad)} image(s) cannot be decoded ({bad[:3]}...); replace them or remove their rows"
        )
    image_cached = cache.hits > 0
    text_id = sha + file_sha256(Path(model_dir) / "tokenizer.json")
    predicted = {}
    for v in probe.variants:
        text = cached_text_features(
            cache,
            model,
            tokenizer,
            text_id,
            f"bias-{_slug(probe.name)}-{_slug(v.name)}-prompts",
            prompts(v.labels, templates),
            cfg.precision,
        )
        predicted[v.name] = zeroshot_predictions(feats, text, v.labels, len(templates))
    extra = linear_probe_quantity(feats, true, cfg) if cfg.linear_probe else {}

    result = analyse(probe, predicted, true, attrs, cfg.bootstrap, cfg.seed, cfg.confidence, cfg.min_group_size, extra)
    gate = check_gate(result, cfg)
    text = findings(result, probe)
    summary = flat_summary(result, probe)
    summary.update(gate_passed=gate.passed, n_images=len(ds))
    plots = plot_all(result, probe, out_dir / "plots")
    doc = {
        "probe": probe.name,
        "probe_file": probe.source,
        "dataset": str(dataset_dir),
        "model_dir": str(model_dir),
        "checkpoint_sha256": sha,
        "image_features_from_cache": image_cached,
        "templates": templates,
        "variants": {v.name: list(v.labels) for v in probe.variants},
        "flagged": dict(probe.flagged),
        "baseline": probe.baseline,
        "config": dataclasses.asdict(cfg),
        "findings": text,
        "gate": {"passed": gate.passed, "violations": gate.violations},
        **result,
    }
    write_atomic(out_dir / "bias.json", json.dumps(json_safe(doc), indent=2))
    write_atomic(out_dir / "summary.json", json.dumps(json_safe(summary), indent=2))
    write_atomic(out_dir / "findings.txt", "\n".join(text) + "\n")
    write_atomic(out_dir / "bias.html", render_html(result, probe, text, (gate.passed, gate.reason), plots, out_dir))
    return BiasResult(out_dir, result, summary, text, gate)
