"""The training stage as the top layer wires it: resolve shards and tokenizer, build the DeepSpeed config, launch."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import posixpath
import time
from typing import Any

import fsspec

log = logging.getLogger(__name__)


def storage_url(params: Any) -> str:
    """Where checkpoints, metrics and the model go: train.storage_path, default OUT/train (local paths made absolute)."""
    url = params.train.storage_path or posixpath.join(params.pipeline.out_root, "train")
    return url if "://" in url else os.path.abspath(url)


def resolve_shards(params: Any) -> list[str] | list[dict[str, Any]]:
    """train.shards, default OUT/ingest/shards/*.tar, expanded: a URL list, or [{"urls", "weight"}] for a mixture."""
    from components.train.data import resolve_sources

    return resolve_sources(params.train.shards, posixpath.join(params.pipeline.out_root, "ingest", "shards", "*.tar"))


def read_captions(shards: list[str], limit: int = 200_000) -> list[str]:
    """Captions (`.txt` members) of the shards, for training a tokenizer; stops after `limit`."""
    import tarfile

    captions: list[str] = []
    for url in shards:
        with fsspec.open(url, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for m in tar:
                if m.isfile() and m.name.endswith(".txt"):
                    captions.append(tar.extractfile(m).read().decode("utf-8", "replace"))
                    if len(captions) >= limit:
                        return captions
    return captions


def build_tokenizer(params: Any, shards: list[str]):
    """The run's tokenizer: a CLIP-style BPE trained on the captions (vocab = model's), or CLIP's merges file."""
    import clip_core

    text_cfg = clip_core.get_model_config(params.train.model).text_cfg
    if params.train.tokenizer == "train-bpe":
        tok = clip_core.Tokenizer.train(read_captions(shards), text_cfg.vocab_size, text_cfg.context_length)
    else:
        tok = clip_core.Tokenizer.from_bpe_merges(params.train.tokenizer, text_cfg.context_length)
    if tok.vocab_size > text_cfg.vocab_size:
        raise ValueError(
            f"train.tokenizer has {tok.vocab_size} tokens but model {params.train.model!r} embeds only "
            f"{text_cfg.vocab_size}; use tokenizer: train-bpe or a model with a larger vocab"
        )
    return tok


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


def resume_key(shards: list[str], exclude: list[str] = (), data: str = "", init: str = "") -> dict[str, str]:
    """What a checkpoint must share with this run to be resumed, beyond the train config: the training code, the
    shards (names and sizes), the training data's content version and what the weights started from. DVC keeps
    OUT/train/checkpoints across runs (persist), so a run killed mid-training resumes; a code or data change starts
    fresh (or from the champion) instead of resuming, or re-exporting, a model trained on something else."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = hashlib.sha256()
    for d in ("clip_core", "components/train", "infra"):
        for f in sorted((root / d).rglob("*")):
            if f.suffix in (".py", ".json", ".yaml") and "__pycache__" not in f.parts:
                code.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
    code.update(Path(__file__).read_bytes())
    fingerprint = hashlib.sha256()
    for url in shards:
        fs, path = fsspec.core.url_to_fs(url)
        fingerprint.update(f"{url}\t{fs.size(path)}\n".encode())
    if exclude:  # excluded keys change the data, but an empty list keeps the keys of older checkpoints valid
        fingerprint.update("\n".join(exclude).encode())
    key = {"code": code.hexdigest()[:16], "shards": fingerprint.hexdigest()[:16]}
    key.update({k: v for k, v in (("data", data), ("init", init)) if v})
    return key


def ingest_summary(params: Any) -> dict[str, Any]:
    """OUT/ingest/summary.json when training reads the ingested shards (train.shards empty); {} otherwise."""
    url = posixpath.join(params.pipeline.out_root, "ingest", "summary.json")
    fs, path = fsspec.core.url_to_fs(url)
    if params.train.shards or not fs.exists(path):
        return {}
    with fs.open(path, "r") as f:
        return json.load(f)


def training_data_version(ingest: dict[str, Any], shards: list[str], exclude: list[str]) -> str:
    """The content version of what training reads: the ingested rows' hash (ingest's data_version), else the shard
    list's fingerprint; with the dedup exclusions folded in."""
    import hashlib

    base = ingest.get("data_version") or "shards:" + resume_key(shards)["shards"]
    if not exclude:
        return base
    return f"{base}-x{hashlib.sha256(chr(10).join(exclude).encode()).hexdigest()[:8]}"


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
    return {"model": url if "://" in url else os.path.abspath(url), "version": champion["version"]}


def load_model_tokenizer(model_url: str):
    """The tokenizer saved in a model directory: continuing a model's weights needs its own token ids."""
    from tokenizers import Tokenizer as HFTokenizer

    import clip_core

    fs, root = fsspec.core.url_to_fs(model_url)
    text = fs.cat_file(posixpath.join(root, "tokenizer.json")).decode()
    meta = json.loads(fs.cat_file(posixpath.join(root, "tokenizer.meta.json")))
    return clip_core.Tokenizer(HFTokenizer.from_str(text), meta["context_length"])


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
    init = champion_init(params)
    tokenizer = load_model_tokenizer(init["model"]) if init else build_tokenizer(params, shards)
    fn_config = build_fn_config(params, sources, tokenizer, storage, **extra)
    fn_config["exclude_keys"] = exclude = exclude_keys(params)
    if exclude:
        print(f"train: skipping {len(exclude)} samples excluded by the audit's dedup")
    fs, root = fsspec.core.url_to_fs(storage)
    fs.makedirs(root, exist_ok=True)
    from components.train.checkpoint import CheckpointStore

    ingest = ingest_summary(params)
    data = training_data_version(ingest, shards, exclude)
    init_from = f"champion v{init['version']} ({init['model']})" if init else "scratch"
    if init:
        fn_config["init_model"] = init["model"]
    fn_config["resume_key"] = resume_key(shards, exclude, data=data, init=init_from)
    store = CheckpointStore(storage)
    store.set_aside_if_incompatible(fn_config["train"], resume_key=fn_config["resume_key"])
    latest = store.latest_good()  # only a checkpoint of this data, code, config and start is left to resume
    training = {"data_version": data, "init_from": init_from, "resumed_from_step": latest.step if latest else None,
                "n_samples": ingest["n_ingested"] - len(exclude) if ingest else None,
                "sources": {k: v.get("ingested", 0) for k, v in ingest.get("by_source", {}).items()}}  # fmt: skip
    how = f"resuming step {latest.step} of this same run" if latest else f"from {init_from}"
    print(f"train: data version {data}; {how}")
    from flows.provenance import git_revision

    record = {"params": params.to_dict(), "git_rev": git_revision(), "shards": shards,
              "excluded_keys": len(exclude), "training": training}  # fmt: skip
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
