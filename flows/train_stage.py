"""The training stage as the top layer wires it: resolve shards and tokenizer, build the DeepSpeed config, launch.

The work itself lives in components/train (tokenizer, identity: code/data versions and the resume key).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import posixpath
import time
from typing import Any

import fsspec

from components.io import absolute
from components.train.identity import code_version, resume_key, training_data_version
from components.train.tokenizer import build_tokenizer, load_model_tokenizer

log = logging.getLogger(__name__)


def storage_url(params: Any) -> str:
    """Where checkpoints, metrics and the model go: train.storage_path, default OUT/train (local paths made absolute)."""
    url = params.train.storage_path or posixpath.join(params.pipeline.out_root, "train")
    return absolute(url)


def resolve_shards(params: Any) -> list[str] | list[dict[str, Any]]:
    """train.shards, default OUT/ingest/shards/*.tar, expanded: a URL list, or [{"urls", "weight"}] for a mixture."""
    from components.train.data import resolve_sources

    return resolve_sources(params.train.shards, posixpath.join(params.pipeline.out_root, "ingest", "shards", "*.tar"))


def exclude_keys(params: Any) -> list[str]:
    """Training keys the audit's dedup excludes (OUT/audit/exclude_keys.txt, policies keep_one/drop); [] otherwise."""
    if params.audit.dedup_policy == "report":
        return []
    url = posixpath.join(params.pipeline.out_root, "audit", "exclude_keys.txt")
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        raise FileNotFoundError(f"{url}: audit.dedup_policy is {params.audit.dedup_policy!r} but dedup has not run; "
                                "run `clip-pipeline stage dedup` first (or set audit.dedup_policy: report)")  # fmt: skip
    with fs.open(path, "r") as f:
        return sorted({line.strip() for line in f if line.strip()})


def keep_keys(params: Any) -> list[str] | None:
    """With filter.enabled: the training keys the CLIP-score filter kept (OUT/filter/kept_keys.txt); None otherwise."""
    if not params.filter.enabled:
        return None
    root = posixpath.join(params.pipeline.out_root, "filter")
    fs, path = fsspec.core.url_to_fs(root)
    if not fs.exists(f"{path}/filter.json") or not json.loads(fs.cat_file(f"{path}/filter.json")).get("enabled"):
        raise FileNotFoundError(f"{root}/kept_keys.txt: filter.enabled is true but the filter has not run with it; "
                                "run `clip-pipeline stage filter` first (or set filter.enabled: false)")  # fmt: skip
    with fs.open(f"{path}/kept_keys.txt", "r") as f:
        keep = sorted({line.strip() for line in f if line.strip()})
    if not keep:  # an empty stream would wait forever for its first batch
        raise ValueError(f"{root}/kept_keys.txt: the CLIP-score filter kept no pairs; lower filter.min_clip_score")
    return keep


def ingest_summary(params: Any) -> dict[str, Any]:
    """OUT/ingest/summary.json when training reads the ingested shards (train.shards empty); {} otherwise."""
    url = posixpath.join(params.pipeline.out_root, "ingest", "summary.json")
    fs, path = fsspec.core.url_to_fs(url)
    if params.train.shards or not fs.exists(path):
        return {}
    with fs.open(path, "r") as f:
        return json.load(f)


def n_training_samples(ingest: dict[str, Any], exclude: list[str], keep: list[str] | None) -> int | None:
    """Pairs training reads: the ingested ones (or the filter's kept ones) less the dedup exclusions; None unknown."""
    if keep is not None:
        return len(set(keep) - set(exclude))
    return ingest["n_ingested"] - len(exclude) if ingest else None


def champion_init(params: Any) -> dict[str, Any] | None:
    """With train.init_from: champion, the registry champion's {"model", "version"}; None for scratch or no champion."""
    if params.train.init_from != "champion":
        return None
    from components.registry import load_registry
    from flows.stages import registry_url

    champion = load_registry(registry_url(params))["champion"]
    if champion is None:
        log.warning("train.init_from is 'champion' but the registry has none yet: training from scratch")
        return None
    url = champion["model"]  # workers run elsewhere (Ray's session dir, other machines): no relative paths
    return {"model": absolute(url), "version": champion["version"]}


def init_weights(params: Any, storage: str) -> dict[str, Any] | None:
    """Where a fresh run's weights come from: None (scratch), the champion, or a model (components.train.init)."""
    from components.train.init import check_init_fits, resolve_init_model

    if params.train.init_from == "champion":
        champion = champion_init(params)
        if champion is None:
            return None
        check_init_fits(params.train, champion["model"], f"champion v{champion['version']}")
        return {"model": champion["model"], "label": f"champion v{champion['version']} ({champion['model']})"}
    return resolve_init_model(params.train, storage) if params.train.init_from else None


def build_fn_config(
    params: Any, shards: list[str] | list[dict[str, Any]], tokenizer: Any, storage: str, **extra: Any
) -> dict[str, Any]:
    """The plain dict each worker receives (see components.train.loop)."""
    from infra.deepspeed_config import deepspeed_config

    t = params.train
    ds = None
    if t.strategy == "deepspeed":
        ds = deepspeed_config(t.zero_stage, t.precision, t.batch_size, t.accum_steps, t.grad_clip)
    return {
        "train": dataclasses.asdict(t),
        "shards": shards,
        "storage_path": storage,
        "tokenizer_json": tokenizer.backend.to_str(),
        "tokenizer_context_length": tokenizer.context_length,
        "ds_config": ds,
        **extra,
    }


def run_train(params: Any, address: str | None = None, **extra: Any) -> str:
    """Train per params on Ray workers; return the URL of the final model directory (OUT/train/model)."""
    from components.train.loop import train_loop_per_worker
    from infra.ray_launcher import launch

    t = params.train
    storage = storage_url(params)
    from components.train.data import source_urls

    sources = resolve_shards(params)
    shards = source_urls(sources)  # every shard once, whatever the mixture (captions, fingerprints, run.json)
    init = init_weights(params, storage)
    tokenizer = load_model_tokenizer(init["model"]) if init else build_tokenizer(t.model, t.tokenizer, shards)
    fn_config = build_fn_config(params, sources, tokenizer, storage, **extra)
    fn_config["exclude_keys"] = exclude = exclude_keys(params)
    if exclude:
        print(f"train: skipping {len(exclude)} samples excluded by the audit's dedup")
    fn_config["keep_keys"] = keep = keep_keys(params)
    if keep is not None:
        print(f"train: only the {len(keep)} pairs the CLIP-score filter kept")
    fs, root = fsspec.core.url_to_fs(storage)
    fs.makedirs(root, exist_ok=True)
    from components.train.checkpoint import CheckpointStore

    ingest = ingest_summary(params)
    data = training_data_version(ingest, shards, exclude, keep)
    init_from = init["label"] if init else "scratch"
    if init:
        fn_config["init_model"] = init["model"]
    fn_config["resume_key"] = resume_key(shards, exclude, data=data, init=init_from, code=code_version([__file__]))
    store = CheckpointStore(storage)
    store.set_aside_if_incompatible(fn_config["train"], resume_key=fn_config["resume_key"])
    latest = store.latest_good()  # only a checkpoint of this data, code, config and start is left to resume
    training = {"data_version": data, "init_from": init_from, "init_model": init["model"] if init else None,
                "resumed_from_step": latest.step if latest else None,
                "n_samples": n_training_samples(ingest, exclude, keep),
                "sources": {k: v.get("ingested", 0) for k, v in ingest.get("by_source", {}).items()},
                # pairs per optimiser step, and how many of them each pair is contrasted with (accum_mode average: fewer)
                "global_batch": t.batch_size * t.accum_steps * t.workers,
                "contrastive_batch": t.batch_size * t.workers * (t.accum_steps if t.accum_mode == "contrastive" else 1),
                }  # fmt: skip
    how = f"resuming step {latest.step} of this same run" if latest else f"from {init_from}"
    print(f"train: data version {data}; {how}")
    from flows.provenance import git_revision

    record = {"params": params.to_dict(), "git_rev": git_revision(), "shards": shards,
              "excluded_keys": len(exclude), "kept_keys": None if keep is None else len(keep),
              "training": training}  # fmt: skip
    fs.pipe_file(posixpath.join(root, "run.json"), json.dumps(record, indent=2).encode())
    t0 = time.perf_counter()
    launch(
        train_loop_per_worker,
        fn_config,
        num_workers=t.workers,
        use_gpu=t.use_gpu,
        cpus_per_worker=t.cpus_per_worker,
        storage_path=storage,
        max_failures=t.max_failures,
        address=address,
        run_name=params.pipeline.run_name,
        min_workers=t.min_workers,
    )
    model_dir = posixpath.join(storage.rstrip("/"), "model")
    log.info("trained %d steps on %d shard(s) in %.0f s; model at %s", t.steps, len(shards), time.perf_counter() - t0, model_dir)
    return model_dir
