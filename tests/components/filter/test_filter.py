"""The CLIP-score filter: a tiny aligned teacher ranks matched pairs above shuffled ones, the kept count is exact, the
basic filters drop exactly the pairs built to fail them, training reads only kept keys, and Ray scores equal local."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.filter.config import FilterConfig
from components.filter.select import keep_count, select_pairs

sys.path.insert(0, str(Path(__file__).parent))
from filter_data import BASIC, FAILING, one_thread


def _params(out: Path, teacher: Path, *sets: str):
    from flows.params import load_params

    basic = [f"filter.{k}={v}" for k, v in BASIC.items()]
    sets = (f"pipeline.out_root={out}", "filter.enabled=true", f"filter.teacher={teacher}", "filter.keep_fraction=0.5",
            "filter.device=cpu", "filter.batch_size=16", *basic, *sets)  # fmt: skip
    return load_params("params.yaml", list(sets))


@pytest.fixture(scope="module")
def local_run(ingested, teacher_dir):
    """The filter stage (flows.stages.run_filter, data.engine local) over the ingested pairs."""
    from flows.stages import run_filter

    out, kinds = ingested
    with one_thread():
        summary = run_filter(_params(out, teacher_dir)).summary
    table = pd.read_parquet(out / "filter" / "scores.parquet")
    table["kind"] = table["key"].map(kinds)
    return out, summary, table


def test_matched_pairs_score_higher_than_shuffled(local_run) -> None:
    _, _, t = local_run
    matched, shuffled = t.loc[t["kind"] == "matched", "score"], t.loc[t["kind"] == "shuffled", "score"]
    assert len(matched) == len(shuffled) == 18
    assert matched.min() > shuffled.max()  # the teacher separates them completely
    assert matched.mean() - shuffled.mean() > 0.5


def test_keep_fraction_is_exact_and_keeps_the_best(local_run) -> None:
    out, summary, t = local_run
    eligible = t[~t["kind"].isin(FAILING)]
    assert summary["kept"] == keep_count(0.5, len(eligible)) == 18
    assert set(t.loc[t["kept"], "key"]) == set(t.loc[t["kind"] == "matched", "key"])  # top half = the matched pairs
    assert (t.loc[t["kind"] == "shuffled", "reason"] == "below_top_fraction").all()
    kept_file = (out / "filter" / "kept_keys.txt").read_text().split()
    assert kept_file == sorted(t.loc[t["kept"], "key"])
    assert summary["threshold"] == pytest.approx(t.loc[t["kept"], "score"].min())


def test_basic_filters_drop_exactly_the_pairs_built_to_fail(local_run) -> None:
    out, summary, t = local_run
    dropped = t[t["reason"].isin(FAILING)]
    assert dict(zip(dropped["kind"], dropped["reason"])) == {r: r for r in FAILING}
    assert len(dropped) == len(FAILING)
    assert all(summary[f"dropped/{r}"] == 1 for r in FAILING)
    doc = json.loads((out / "filter" / "filter.json").read_text())
    assert doc["n_kept"] + sum(doc["by_reason"].values()) == doc["n_pairs"] == len(t)
    page = (out / "filter" / "filter.html").read_text()
    assert "kept, lowest scores" in page and "dropped by score, highest scores" in page and "data:image/png" in page
    assert "dropped: aspect_ratio" in page and "reddish-squareness" in page  # each basic filter shows its example
    from components.report.build import ReportConfig, build_report

    report = build_report(out, ReportConfig(title="t", curve_smoothing=1))  # the run report's section links the page
    assert "CLIP-score filter" in report.sections
    assert "../filter/filter.html" in Path(report.html_path).read_text()


def test_select_breaks_ties_by_key_and_thresholds_inclusively() -> None:
    keys = np.array(["d", "c", "b", "a", "e"], dtype=object)
    scores = np.array([0.5, 0.5, 0.5, 0.1, np.nan], dtype=np.float32)
    basic = np.array(["", "", "", "", ""], dtype=object)
    top = select_pairs(keys, scores, basic, FilterConfig(keep_fraction=0.5))  # 4 scored: keep 2, ties by key
    assert top.tolist() == ["below_top_fraction", "kept", "kept", "below_top_fraction", "unreadable"]
    cut = select_pairs(keys, scores, basic, FilterConfig(min_clip_score=0.5))
    assert cut.tolist() == ["kept", "kept", "kept", "low_score", "unreadable"]
    assert keep_count(0.29, 100) == 29 and keep_count(0.3, 10) == 3 and keep_count(1.0, 7) == 7
    with pytest.raises(ValueError, match="not both"):
        FilterConfig(min_clip_score=0.2, keep_fraction=0.3)


def test_training_reads_only_the_kept_keys(local_run, teacher_dir, monkeypatch, tmp_path) -> None:
    """The real training loop (1 rank, 2 steps) with the filter on: every caption it tokenises is a kept pair's."""
    import dataclasses

    from components.train import loop
    from components.train.config import TrainConfig
    from flows.train_stage import keep_keys

    out, _, t = local_run
    params = _params(out, teacher_dir)
    keep = keep_keys(params)
    assert keep == sorted(t.loc[t["kept"], "key"])
    with pytest.raises(FileNotFoundError, match="stage filter"):
        keep_keys(_params(tmp_path, teacher_dir))
    assert keep_keys(_params(tmp_path, teacher_dir, "filter.enabled=false")) is None

    meta = pd.read_parquet(out / "ingest" / "metadata.parquet")
    caption_of = dict(zip(meta["key"], meta["caption"]))
    seen: list[str] = []
    real = loop.build_loader

    def recording(spec, transform, tokenizer, *a, **k):
        return real(spec, transform, lambda caps: (seen.extend(caps), tokenizer(caps))[1], *a, **k)

    monkeypatch.setattr(loop, "build_loader", recording)
    from clip_core import Tokenizer

    tok = Tokenizer.load(teacher_dir / "tokenizer.json")
    cfg = TrainConfig(workers=1, steps=2, batch_size=6, warmup=1, ckpt_every=2, log_every=1, strategy="ddp",
                      num_data_workers=0, shuffle_buffer=8, model="tiny")  # fmt: skip
    shards = sorted(str(p) for p in (out / "ingest" / "shards").glob("*.tar"))
    config = {"train": dataclasses.asdict(cfg), "shards": shards, "storage_path": str(tmp_path / "train"),
              "tokenizer_json": tok.backend.to_str(), "tokenizer_context_length": 32, "ds_config": None,
              "keep_keys": keep}  # fmt: skip
    loop.train_loop_per_worker(config)
    assert len(seen) == 12
    assert set(seen) <= {caption_of[k] for k in keep}  # captions are unique per pair: no dropped pair was read


@pytest.mark.smoke
def test_ray_scores_equal_local(local_run, teacher_dir, tmp_path_factory, local_ray) -> None:
    """data.engine ray: Ray Data map_batches over an actor pool (a local Ray here) gives the local path's scores."""
    from flows.stages import run_filter

    out, _, local = local_run
    ray_out = tmp_path_factory.mktemp("ray-out")
    (ray_out / "ingest").symlink_to(out / "ingest")
    # 2 actors on 2 CPUs: one is left to the shard readers (else the pool would starve them forever)
    summary = run_filter(_params(ray_out, teacher_dir, "data.engine=ray", "filter.ray_actors=2", "filter.batch_size=8")).summary
    assert summary["engine"] == "ray"
    got = pd.read_parquet(ray_out / "filter" / "scores.parquet")
    assert got["key"].tolist() == local["key"].tolist()
    np.testing.assert_allclose(got["score"], local["score"], rtol=0, atol=1e-5)
    assert got["reason"].tolist() == local["reason"].tolist()
