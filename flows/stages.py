"""One glue function per stage, `run_<stage>(params) -> StageOutput`, shared by the CLI, DVC and Prefect.

This is the only place that joins components and infra: it resolves paths under the output
root, calls the component function with its typed config, records run identity, and returns
a small summary (plus an optional gate verdict) for the flow to publish.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec

from components.io import is_absolute_ref, is_url
from flows.params import Params
from flows.provenance import data_version, git_revision, write_run_info


@dataclass(frozen=True)
class Gate:
    """A stage's pass/fail verdict; a failed gate stops the pipeline with `reason`."""

    passed: bool
    reason: str = ""


@dataclass(frozen=True)
class StageOutput:
    """What a stage reports upward: numbers for people, links to files, an optional gate."""

    summary: dict[str, Any]
    links: dict[str, str] = field(default_factory=dict)
    gate: Gate | None = None
    markdown: str = ""  # a headline for the Prefect run page (the report's first screen)


def out_path(params: Params, *parts: str) -> str:
    """A path/URL under `pipeline.out_root`."""
    return "/".join([params.pipeline.out_root.rstrip("/"), *parts])


def _read_json(url: str) -> dict[str, Any]:
    with fsspec.open(url, "r") as f:
        return json.load(f)


def _exists(url: str) -> bool:
    fs, path = fsspec.core.url_to_fs(url)
    return fs.exists(path)


# ----------------------------------------------------------------------------- data
def run_synth(params: Params) -> StageOutput:
    """Write the embedded default dataset to data.raw_root, unless ingest reads the user's own sources."""
    from components.data.synth import build_synth, synth_is_current

    if params.data.ingest.sources:
        return StageOutput(summary={"skipped": "data.ingest.sources is set: the user's data is used"})
    if synth_is_current(raw_data_url(params), params.data.synth):
        return StageOutput(summary={"skipped": f"{raw_data_url(params)} already holds this dataset"})
    r = build_synth(raw_data_url(params), params.data.synth)
    summary = {"train_pairs": r.n_train, "shards": r.n_shards, "planted_duplicates": r.n_planted, "seconds": round(r.seconds, 1)}
    summary.update({f"eval/{k}": v for k, v in r.eval_sets.items()})
    return StageOutput(summary=summary, links={"raw data": r.root})


def ingest_sources(params: Params) -> list[str]:
    """The configured sources, or the embedded dataset's training shards."""
    return list(params.data.ingest.sources) or [f"{raw_data_url(params)}/train"]


def run_ingest(
    params: Params, sources: list[str] | None = None, out: str | None = None, address: str | None = None
) -> StageOutput:
    """Normalise and re-shard the sources (default: data.ingest.sources or the embedded dataset) into `out` (default
    OUT/ingest), quarantining bad samples with a reason. With data.engine=ray the decoding runs on the Ray cluster at
    `address` / RAY_ADDRESS (else a local Ray), as training does."""
    from components.data.ingest import ingest

    engine = data_engine(params, address)
    out = out or out_path(params, "ingest")
    r = ingest(sources or ingest_sources(params), out, params.data.ingest, engine=engine)
    embedded = not sources and not params.data.ingest.sources  # the raw data DVC versions
    write_run_info(out, params.to_dict(), data_url=raw_data_url(params) if embedded else None)
    summary = {"input": r.n_input, "ingested": r.n_ingested, "quarantined": r.n_quarantined, "shards": r.n_shards}
    summary.update({f"quarantined/{k}": v for k, v in r.by_reason.items()})
    summary["samples_per_s"] = round(r.samples_per_s, 1)
    if r.engine == "ray":
        summary["ray_nodes"] = r.n_nodes
    return StageOutput(summary=summary, links={"metadata": f"{out}/metadata.parquet", "quarantine": f"{out}/quarantine.parquet"})


def run_validate(params: Params) -> StageOutput:
    """great-expectations over the metadata table; a failed blocking expectation stops the run."""
    from components.data.validate import validate

    out = out_path(params, "validate")
    r = validate(out_path(params, "ingest"), out, params.data.validate)
    summary = {
        "passed": r.passed,
        "rows": r.n_rows,
        "failed": ", ".join(r.failed) or "-",
        "warnings": ", ".join(r.warnings) or "-",
    }
    return StageOutput(summary=summary, links={"data docs": f"{out}/report.html"}, gate=Gate(r.passed, r.message))


def run_filter(params: Params, address: str | None = None) -> StageOutput:
    """CLIP-score filter (components/filter; off unless filter.enabled): score every ingested pair with filter.teacher,
    keep by score and the basic filters; training then reads only OUT/filter/kept_keys.txt. With data.engine ray the
    scoring runs on Ray Data (`address`, RAY_ADDRESS, else a local Ray)."""
    from components.filter.stage import filter_pairs, write_disabled
    from flows.staging import local_model_dir

    out, cfg = out_path(params, "filter"), params.filter
    if not cfg.enabled:
        write_disabled(out)
        return StageOutput(summary={"skipped": "filter.enabled is false: training reads every ingested pair"})
    data_engine(params, address)
    with local_model_dir(cfg.teacher, cfg.teacher_config or None) as teacher:  # remote or foreign models: a local copy
        r = filter_pairs(out_path(params, "ingest"), out, cfg, teacher, params.data.engine)
    write_run_info(out, params.to_dict())
    summary = {"line": r.line, "pairs": r.n_pairs, "kept": r.n_kept, "threshold": r.threshold, "engine": r.engine}
    summary.update({f"dropped/{k}": v for k, v in r.by_reason.items()})
    summary["pairs_per_s"] = round(r.pairs_per_s, 1)
    links = {"scores": f"{out}/scores.parquet", "kept keys": f"{out}/kept_keys.txt", "review page": f"{out}/filter.html"}
    return StageOutput(summary=summary, links=links)


# ----------------------------------------------------------------------------- train, evaluate, report
def run_train(params: Params, address: str | None = None) -> StageOutput:
    """Pre-train on Ray workers (DeepSpeed or DDP; `address`: an existing Ray cluster); the model lands in OUT/train/model."""
    from components.train.history import export_curve
    from flows import console
    from flows.train_stage import run_train as launch_train
    from flows.train_stage import storage_url

    with console.follow_training(f"{storage_url(params).rstrip('/')}/metrics.jsonl", params.train.steps):  # the stage's bar
        model_dir = launch_train(params, address=address)
    training = _read_json(f"{storage_url(params).rstrip('/')}/run.json").get("training", {})
    raw = raw_data_url(params) if not params.data.ingest.sources else None
    info = write_run_info(model_dir, params.to_dict(), data_url=raw, training=training)
    metrics = out_path(params, "train", "metrics.jsonl")
    last = export_curve(metrics, out_path(params, "train", "metrics.csv"))
    t = params.train
    summary = {"steps": t.steps, "strategy": t.strategy, "workers": t.workers}
    summary.update(
        {k: round(v, 4) if isinstance(v, float) else v for k, v in last.items() if k in ("loss", "logit_scale", "samples_per_s")}
    )
    summary["data_version"] = info["data_version"]
    summary.update({f"training/{k}": training.get(k) for k in ("data_version", "init_from", "resumed_from_step", "n_samples")})
    return StageOutput(summary=summary, links={"model": model_dir, "metrics": metrics})


def run_evaluate(params: Params) -> StageOutput:
    """Zero-shot, retrieval, linear probe and robustness on every eval set, one encode pass each."""
    out = out_path(params, "evaluate")
    r = evaluate_at(out_path(params, "train", "model"), eval_root(params), out, params.evaluate, engine=data_engine(params))
    summary = {k: round(v, 4) for k, v in r.metrics.items() if k.endswith(("/acc1", "recall@1", "/lp_acc1"))}
    summary.update({"encoded_sets": r.encoded, "cached_sets": r.cached})
    summary.update(evaluate_transfer(params, r.metrics))
    return StageOutput(summary=summary, links={"results": f"{out}/results.html", "metrics": f"{out}/metrics.json"})


def evaluate_transfer(params: Params, finetuned: dict[str, float]) -> dict[str, float]:
    """WiSE-FT (evaluate.wise_ft_alpha > 0, training started from a model): score the initial and interpolated models."""
    import tempfile

    from components.evaluate.transfer import interpolate, transfer_table, zero_shot_config
    from flows.staging import local_model_dir

    alpha, out = params.evaluate.wise_ft_alpha, out_path(params, "evaluate", "transfer")
    initial = _read_json(out_path(params, "train", "model", "run_info.json")).get("training", {}).get("init_model")
    if not alpha or not initial:
        return {}
    cfg, metrics = zero_shot_config(params.evaluate), {"finetuned": finetuned}
    with contextlib.ExitStack() as stack:  # remote models are read from local copies
        a, b = (stack.enter_context(local_model_dir(u)) for u in (initial, out_path(params, "train", "model")))
        wise = interpolate(a, b, alpha, f"{stack.enter_context(tempfile.TemporaryDirectory())}/model")
        for name, model in (("initial", initial), ("wise_ft", wise)):
            metrics[name] = evaluate_at(model, eval_root(params), f"{out}/{name}", cfg, engine=data_engine(params)).metrics
    return transfer_table(initial, alpha, metrics, out).summary()


def evaluate_at(
    model_dir: str,
    eval_dir: str,
    out: str,
    cfg: Any,
    model_config: str | None = None,
    tokenizer: str | None = None,
    engine: str = "local",
) -> Any:
    """`evaluate_model` on any fsspec URLs: remote inputs are read from local copies, the output published whole.

    `model_dir` may be any model input clip_core reads (open_clip/OpenAI files, hub dirs): see `local_model_dir`.
    `engine`: `data_engine(params)` (ray: the images are encoded on Ray Data actors).
    """
    import dataclasses

    from components.evaluate.suite import evaluate_model
    from flows.staging import is_remote, local_input, local_model_dir, local_output

    cache = cfg.cache_dir
    with contextlib.ExitStack() as stack:
        model = stack.enter_context(local_model_dir(model_dir, model_config, tokenizer))
        evals = stack.enter_context(local_input(eval_dir))
        local_out = stack.enter_context(local_output(out, keep=("cache",) if not cache else ()))
        if is_remote(cache):  # an explicit remote cache: a working copy, written back after the run
            cfg = dataclasses.replace(cfg, cache_dir=stack.enter_context(local_output(cache, keep=("",))))
        return evaluate_model(model, evals, local_out, cfg, engine)


def run_bias(params: Params) -> StageOutput:
    """Bias probe (components/bias): flagged-label rates and accuracy per group, per label set; gate on thresholds."""
    from components.bias.probe import run_bias_probe
    from flows.staging import is_remote, local_input, local_output

    out = out_path(params, "bias")
    cfg = params.bias
    dataset = cfg.dataset_dir or f"{eval_root(params)}/bias_probe"
    if not cfg.dataset_dir and not _exists(f"{dataset}/manifest.csv"):
        return StageOutput(summary={"skipped": f"no bias dataset at {dataset}; set bias.dataset_dir to probe your own"})
    cache = cfg.cache_dir or params.evaluate.cache_dir or out_path(params, "evaluate", "cache")
    with contextlib.ExitStack() as stack:
        model = stack.enter_context(local_input(out_path(params, "train", "model")))
        data = stack.enter_context(local_input(dataset))
        local_out = stack.enter_context(local_output(out))
        if is_remote(cache):  # a read-only working copy: the evaluation's image features, so nothing is re-encoded
            cache = stack.enter_context(_optional_input(cache))
        r = run_bias_probe(model, data, local_out, cfg, cache_dir=cache, engine=data_engine(params))
    summary = {k: round(v, 4) if isinstance(v, float) else v for k, v in r.summary.items() if "/" not in k or k.count("/") <= 1}
    summary["findings"] = " ".join(r.findings)
    links = {"bias report": f"{out}/bias.html", "bias json": f"{out}/bias.json", "summary": f"{out}/summary.json"}
    return StageOutput(summary=summary, links=links, gate=Gate(r.gate.passed, r.gate.reason))


@contextlib.contextmanager
def _optional_input(url: str) -> Iterator[str]:
    """A local copy of `url`, or an empty temporary directory when it does not exist."""
    import tempfile

    from flows.staging import download

    with tempfile.TemporaryDirectory(prefix="clip-cache-") as tmp:
        download(url, tmp)
        yield tmp


def run_report(params: Params) -> StageOutput:
    """One HTML page + JSON + model card over everything the stages wrote."""
    from components.report import build_report

    gate_metric = params.registry.metric  # the first screen compares it with the previous champion's
    r = build_report(params.pipeline.out_root, params.report, registry_path=registry_url(params), gate_metric=gate_metric)
    return StageOutput(
        summary={"verdict": r.verdict, "sections": ", ".join(r.sections)},
        links={"report": r.html_path, "model card": r.model_card_path},
        markdown=r.headline_md,
    )


def data_engine(params: Params, address: str | None = None) -> str:
    """data.engine; with "ray", Ray is up after this call (`address` / RAY_ADDRESS, else a local Ray): the data stages'
    Ray Data maps (ingest, audit features, evaluation and bias encoding) assume it."""
    if params.data.engine == "ray":
        from flows import console
        from infra.ray_launcher import ensure_ray

        console.quiet_ray(data=True)  # a quiet run: Ray's and Ray Data's INFO lines go to the log file, as Ray Train's do
        t = params.train  # a local Ray started here is the one a later train stage in this process joins: size it alike
        ensure_ray(address, num_cpus=max(os.cpu_count() or 1, t.workers * t.cpus_per_worker))
    return params.data.engine


def eval_root(params: Params) -> str:
    """Where plain eval-set names resolve: `data.raw_root/eval` (other sets come as `evaluate.datasets` specs)."""
    return f"{raw_data_url(params)}/eval"


def registry_url(params: Params) -> str:
    """registry.path, relative to the output root unless it is absolute or a URL."""
    url = params.registry.path
    return url if is_absolute_ref(url) else out_path(params, url)


# ----------------------------------------------------------------------------- audit
def run_dedup(params: Params) -> StageOutput:
    """The audit's dedup step alone (before training: with keep_one/drop, training skips OUT/audit/exclude_keys.txt)."""
    return run_audit(params, ("dedup",))


def run_audit(params: Params, steps: tuple[str, ...] = ("overlap",)) -> StageOutput:
    """Dedup the training set and/or audit train/eval overlap (components/audit); writes OUT/audit/*.json.

    Reads OUT/ingest (metadata.parquet, shards), the eval sets under `eval_root` and the evaluation stage's
    per-sample zero-shot predictions (OUT/evaluate/results/<dataset>/zeroshot_predictions.csv).
    """
    from components.audit.suite import run_audit as audit

    out = out_path(params, "audit")
    names = params.evaluate.datasets
    include = [n for n in names if isinstance(n, str)] if names else None  # `{name: spec}` sets are not audited
    r = audit(out_path(params, "ingest"), eval_root(params), out_path(params, "evaluate", "results"), out, params.audit,
              steps, include, data_engine(params))  # fmt: skip
    write_run_info(out, params.to_dict())
    summary = {"line": r.line, **r.summary} if r.line is not None else r.summary
    return StageOutput(summary=summary, links=r.files, gate=Gate(r.passed, r.reason))


# ----------------------------------------------------------------------------- register
def run_register(params: Params) -> StageOutput:
    """Compare the new model with the champion on the gate metric; promote only if better."""
    from components.registry import register_model

    metrics = _read_json(out_path(params, "evaluate", "metrics.json"))
    url = registry_url(params)
    info = (
        _read_json(out_path(params, "train", "model", "run_info.json"))
        if _exists(out_path(params, "train", "model", "run_info.json"))
        else {}
    )
    decision = register_model(
        url,
        model_uri=out_path(params, "train", "model"),
        metrics=metrics,
        cfg=params.registry,
        data_version=info.get("data_version"),
        git_revision=git_revision(),
        training=info.get("training"),
        archive=True,
    )
    summary = {"promoted": decision.promoted, "version": decision.version, "reason": decision.reason, "data": decision.data}
    return StageOutput(summary=summary, links={"registry": url})


def data_changed(params: Params) -> tuple[bool, str]:
    """For scheduled retraining: has the raw data changed since the champion was trained?"""
    from components.registry import load_registry

    champion = load_registry(registry_url(params))["champion"]
    current = data_version(raw_data_url(params))
    if champion is None:
        return True, f"no champion yet; data version {current}"
    if champion.get("data_version") != current:
        return True, f"data changed: {champion.get('data_version')} -> {current}"
    return False, f"data unchanged since champion v{champion['version']} ({current})"


def snapshot_params(params: Params, params_path: str) -> str:
    """Copy the params file into OUT/run_params.yaml (a local path, or a local temp file for remote roots)."""
    from pathlib import Path

    text = Path(params_path).read_text()
    target = out_path(params, "run_params.yaml")
    if is_url(target):
        import tempfile

        fd, local = tempfile.mkstemp(prefix="clip-params-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        with fsspec.open(target, "w") as f:
            f.write(text)
        return local
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(text)
    return str(Path(target).resolve())


def save_timings(params: Params, timings: dict[str, dict[str, float]]) -> None:
    """Per-stage wall and compute seconds of one flow run (orchestration overhead = wall - compute)."""
    fs, path = fsspec.core.url_to_fs(out_path(params, "pipeline_timings.json"))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w") as f:
        json.dump(timings, f, indent=2)


def raw_data_url(params: Params) -> str:
    """Where the raw input data lives (`data.raw_root`; the embedded dataset by default)."""
    return params.data.raw_root.rstrip("/")


__all__ = ["Gate", "StageOutput", "data_changed", "out_path", "run_register", "write_run_info"]
