"""Keys are names inside one source (two img2dataset downloads both number from 000000000), and the manifests
users have: CC3M/CC12M-style TSV with or without a header, JSON Lines; a bad line is quarantined with its number."""

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from components.data.config import IngestConfig
from components.data.ingest import ingest
from components.data.sources import source_tag
from components.data.storage import tar_bytes
from tests.components.data.conftest import png

CFG = IngestConfig(num_workers=0, max_pixels=1_000_000, samples_per_shard=50, progress=False)


def _download(path: Path, seed: int, n: int = 4, repeat: str | None = None) -> None:
    """An img2dataset-style shard: keys 000000000.., different images per seed; `repeat` adds that key again at the end."""
    members = []
    for i in range(n):
        key = f"{i:09d}"
        members += [(f"{key}.jpg", png(seed=seed * 10 + i)), (f"{key}.txt", f"download {seed} pair {i}".encode())]
    if repeat is not None:
        members += [(f"{repeat}.jpg", png(seed=99)), (f"{repeat}.txt", b"the same key again")]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tar_bytes(members))


def _tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return (pd.read_parquet(out / "metadata.parquet"), pd.read_parquet(out / "quarantine.parquet"),
            json.loads((out / "summary.json").read_text()))  # fmt: skip


def test_two_downloads_with_the_same_keys_are_both_ingested(tmp_path: Path) -> None:
    a, b = tmp_path / "raw" / "00000.tar", tmp_path / "raw" / "dl2-00000.tar"
    _download(a, seed=1)
    _download(b, seed=2)
    r = ingest([str(tmp_path / "raw")], str(tmp_path / "out"), CFG)
    meta, q, summary = _tables(tmp_path / "out")
    assert (r.n_ingested, r.n_quarantined) == (8, 0) and q.empty
    assert meta["key"].is_unique and sorted(meta["source_key"]) == sorted([f"{i:09d}" for i in range(4)] * 2)
    for url in (a, b):  # the stable id: the source's tag and its own key; the original key and source are kept
        rows = meta[meta["source_shard"] == str(url)]
        assert (rows["key"] == source_tag(str(url)) + "_" + rows["source_key"]).all()
    assert {k.rsplit("/", 1)[-1]: v["ingested"] for k, v in summary["by_source"].items()} == {
        "00000.tar": 4, "dl2-00000.tar": 4}  # fmt: skip
    # the same data ingested again gets the same keys and the same data version; more data a new version
    r2 = ingest([str(a), str(b)], str(tmp_path / "again"), CFG)
    assert r2.data_version == r.data_version == summary["data_version"]
    assert list(pd.read_parquet(tmp_path / "again" / "metadata.parquet")["key"]) == list(meta["key"])
    assert ingest([str(a)], str(tmp_path / "one"), CFG).data_version != r.data_version


def test_a_key_repeated_within_one_shard_is_still_a_duplicate(tmp_path: Path) -> None:
    _download(tmp_path / "00000.tar", seed=1, repeat="000000001")
    r = ingest([str(tmp_path / "00000.tar")], str(tmp_path / "out"), CFG)
    _, q, summary = _tables(tmp_path / "out")
    assert (r.n_ingested, r.by_reason) == (4, {"duplicate_key": 1})
    assert q.iloc[0]["key"] == "000000001"  # reported by the key the user knows
    assert next(iter(summary["by_source"].values()))["by_reason"] == {"duplicate_key": 1}


def _images(tmp: Path, n: int) -> None:
    (tmp / "img").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (tmp / "img" / f"{i}.png").write_bytes(png(seed=30 + i))


def test_cc3m_tsv_without_header_and_a_bad_line(tmp_path: Path) -> None:
    _images(tmp_path, 3)
    lines = ["a red circle\timg/0.png", "a blue square\timg/1.png", "a caption without its url", "a star\timg/2.png"]
    (tmp_path / "cc3m.tsv").write_text("\n".join(lines) + "\n")
    r = ingest([str(tmp_path / "cc3m.tsv")], str(tmp_path / "no-cols"), CFG)  # header-less: columns must be named
    q = pd.read_parquet(tmp_path / "no-cols" / "quarantine.parquet")
    assert r.n_ingested == 0 and list(q["reason"]) == ["unreadable_source"] and "manifest_columns" in q["detail"][0]

    cfg = replace(CFG, manifest_columns=("caption", "image"))
    r = ingest([str(tmp_path / "cc3m.tsv")], str(tmp_path / "out"), cfg)
    meta, q, _ = _tables(tmp_path / "out")
    assert (r.n_ingested, r.by_reason) == (3, {"bad_manifest_line": 1})
    assert list(meta["caption"]) == ["a red circle", "a blue square", "a star"]
    assert q.iloc[0]["detail"].startswith("line 3:") and q.iloc[0]["key"] == "cc3m-000000002"


def test_cc12m_tsv_with_header_in_its_column_order(tmp_path: Path) -> None:
    _images(tmp_path, 2)
    (tmp_path / "cc12m.tsv").write_text("url\tcaption\nimg/0.png\tfirst\nimg/1.png\tsecond\textra field\n")
    cfg = replace(CFG, manifest_image_col="url")
    r = ingest([str(tmp_path / "cc12m.tsv")], str(tmp_path / "out"), cfg)
    meta, q, _ = _tables(tmp_path / "out")
    assert r.n_ingested == 1 and list(meta["caption"]) == ["first"]
    assert list(q["reason"]) == ["bad_manifest_line"] and q.iloc[0]["detail"].startswith("line 3:")


def test_jsonl_manifest_with_bad_lines(tmp_path: Path) -> None:
    _images(tmp_path, 2)
    rows = [{"key": "j0", "image": "img/0.png", "caption": "zero"}, {"key": "j1", "image": "img/1.png", "caption": "one"}]
    lines = [json.dumps(rows[0]), "{not json", "[1, 2]", json.dumps(rows[1]), json.dumps({"key": "j2", "image": "img/1.png"})]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    r = ingest([str(tmp_path / "m.jsonl")], str(tmp_path / "out"), CFG)
    meta, q, _ = _tables(tmp_path / "out")
    assert sorted(meta["source_key"]) == ["j0", "j1"] and r.n_quarantined == 3
    got = {d.split(":", 1)[0]: reason for d, reason in zip(q["detail"], q["reason"])}
    assert got == {"line 2": "bad_manifest_line", "line 3": "bad_manifest_line", "no caption value": "missing_caption"}


def test_manifest_columns_must_name_the_image_and_caption_columns() -> None:
    with pytest.raises(ValueError, match="manifest_columns"):
        IngestConfig(manifest_columns=("url", "text"))


def test_a_dotted_manifest_key_is_trainable_and_a_clash_it_makes_is_a_duplicate(tmp_path: Path) -> None:
    from components.data.tarstream import iter_shard_samples

    _images(tmp_path, 3)
    rows = [{"key": "img.001", "image": "img/0.png", "caption": "zero"},
            {"key": "img_001", "image": "img/1.png", "caption": "one"},
            {"key": "v1.2.3", "image": "img/2.png", "caption": "two"}]  # fmt: skip
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = ingest([str(tmp_path / "m.jsonl")], str(tmp_path / "out"), CFG)
    meta, q, _ = _tables(tmp_path / "out")
    assert r.n_ingested == 2 and list(q["reason"]) == ["duplicate_key"] and q.iloc[0]["key"] == "img_001"
    samples = list(iter_shard_samples(sorted(str(p) for p in (tmp_path / "out" / "shards").glob("*.tar"))))
    # every ingested sample reads back whole under its key: image, caption and metadata (dots split no key)
    assert sorted(s["__key__"] for s in samples) == sorted(meta["key"])
    assert all({"png", "txt", "json"} <= set(s) for s in samples)
    assert sorted(meta["source_key"]) == ["img.001", "v1.2.3"]
