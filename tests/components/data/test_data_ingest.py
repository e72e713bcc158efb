import gzip
import json
import os
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import fsspec
import fsspec.config
import pandas as pd
import pytest

from components.data.checks import Bad, Good, RawSample, check_batch
from components.data.config import IngestConfig
from components.data.ingest import ingest, iter_raw
from components.data.sources import expand_sources, is_unsafe, source_tag, split_key
from components.data.workers import batches, check_all

CFG = IngestConfig(num_workers=0, max_pixels=1_000_000, samples_per_shard=5, progress=False)


def _check(out: str, expected: dict[str, str], good: set[str], n_ingested: int) -> None:
    fs, root = fsspec.core.url_to_fs(out)
    with fs.open(f"{root}/quarantine.parquet", "rb") as f:
        q = pd.read_parquet(f)
    with fs.open(f"{root}/metadata.parquet", "rb") as f:
        meta = pd.read_parquet(f)
    with fs.open(f"{root}/summary.json", "rb") as f:
        summary = json.load(f)
    got = dict(zip(q["key"], q["reason"]))
    for key, reason in expected.items():
        assert got.get(key) == reason, (key, got.get(key), q[q.key == key].to_dict("records"))
    assert len(q) == len(expected)  # nothing else was rejected
    assert sorted(meta["source_key"]) == sorted(good)  # every good sample exactly once
    assert meta["key"].is_unique and len(meta) == n_ingested
    assert (meta["key"] == meta["source_key"].radd(meta["source_shard"].map(lambda u: source_tag(u) + "_"))).all()
    assert summary["n_input"] == summary["n_ingested"] + summary["n_quarantined"] == len(good) + len(expected)
    assert summary["quarantine_by_reason"] == q["reason"].value_counts().to_dict()
    assert meta["phash"].str.fullmatch(r"[0-9a-f]{16}").all() and meta["sha256"].str.len().eq(64).all()
    # the normalised shards hold exactly the ingested samples, with image, caption and json members
    keys = []
    for shard in sorted(fs.glob(f"{root}/shards/*.tar")):
        with fs.open(shard, "rb") as f, tarfile.open(fileobj=f) as tar:
            names = tar.getnames()
        keys += [n.rsplit(".", 1)[0] for n in names if n.endswith(".txt")]
        assert len(names) == 3 * sum(n.endswith(".txt") for n in names)
    assert sorted(keys) == sorted(meta["key"])


def test_every_bad_case_is_quarantined_with_its_reason(bad_shard_set, tmp_path) -> None:
    urls, expected, good = bad_shard_set
    r = ingest(urls, str(tmp_path / "ingest"), CFG)
    assert (r.n_ingested, r.n_quarantined) == (len(good), len(expected))
    assert r.n_shards == 3  # 12 samples, 5 per shard
    _check(str(tmp_path / "ingest"), expected, good, len(good))
    q = pd.read_parquet(tmp_path / "ingest" / "quarantine.parquet")
    assert q.detail.str.len().gt(0).all()  # every record says why
    assert not (tmp_path / "evil").exists() and not Path("/abs/evil.png").exists()  # nothing was extracted


def test_worker_processes_and_brace_pattern_give_the_same_result(bad_shard_set, tmp_path) -> None:
    urls, expected, good = bad_shard_set
    pattern = "file://" + str(Path(urls[0]).parent) + "/shard-{000000..000001}.tar"
    cfg = IngestConfig(num_workers=1, batch_size=4, max_in_flight=2, max_pixels=1_000_000, samples_per_shard=5, progress=False)
    ingest([pattern], str(tmp_path / "ingest"), cfg)
    _check(str(tmp_path / "ingest"), expected, good, len(good))
    ingest(urls, str(tmp_path / "serial"), CFG)
    a = pd.read_parquet(tmp_path / "ingest" / "metadata.parquet")
    b = pd.read_parquet(tmp_path / "serial" / "metadata.parquet")
    pd.testing.assert_frame_equal(a.drop(columns="source_shard"), b.drop(columns="source_shard"))


def test_manifest_source(bad_manifest_set, tmp_path) -> None:
    path, expected, good = bad_manifest_set
    ingest([str(path)], str(tmp_path / "ingest"), CFG)
    _check(str(tmp_path / "ingest"), expected, good, len(good))
    meta = pd.read_parquet(tmp_path / "ingest" / "metadata.parquet")
    assert meta.set_index("source_key").loc["m3", "caption"] == "manifest caption 3"
    # the same rows as a Parquet manifest (no non-UTF-8 possible there)
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding_errors="replace")
    df = df[df.key != "latin1"]
    df.to_parquet(path.with_suffix(".parquet"))
    ingest([str(path.with_suffix(".parquet"))], str(tmp_path / "pq"), CFG)
    _check(str(tmp_path / "pq"), {k: v for k, v in expected.items() if k != "latin1"}, good, len(good))


def test_memory_filesystem_source_and_output(bad_shard_set) -> None:
    urls, expected, good = bad_shard_set
    fs = fsspec.filesystem("memory")
    try:
        for u in urls:
            fs.pipe(f"/bad/{Path(u).name}", Path(u).read_bytes())
        r = ingest(["memory://bad/shard-{000000..000001}.tar"], "memory://out/ingest", CFG)
        assert r.n_ingested == len(good)
        _check("memory://out/ingest", expected, good, len(good))
        assert not [p for p in fs.ls("/out", detail=False) if ".tmp-" in p]  # atomic publish left no temp dir
    finally:
        fs.rm("/bad", recursive=True)
        fs.rm("/out", recursive=True)


def test_source_errors_name_the_source(tmp_path) -> None:
    with pytest.raises(ValueError, match="matches no tar shards"):
        ingest([str(tmp_path / "nothing-here")], str(tmp_path / "out"), CFG)
    (tmp_path / "garbage.tar").write_bytes(b"\x00" * 10 + b"not a tar at all" * 40)
    r = ingest([str(tmp_path / "garbage.tar")], str(tmp_path / "out"), CFG)
    assert r.n_input == r.n_quarantined == 1


def test_gzipped_shard_and_pil_limits_restored(bad_shard_set, tmp_path) -> None:
    from PIL import Image

    urls, _, _ = bad_shard_set
    gz = tmp_path / "shard-000000.tar.gz"
    gz.write_bytes(gzip.compress(Path(urls[0]).read_bytes()))
    before = Image.MAX_IMAGE_PIXELS
    r = ingest([str(gz)], str(tmp_path / "gz"), CFG)
    assert before == Image.MAX_IMAGE_PIXELS
    assert r.n_ingested == 10 and r.by_reason["unsafe_path"] == 2 and r.by_reason["corrupt_tar_member"] == 1


def _crashing_check(batch, cfg):
    """Stands in for a decoder that kills its process (segfault, OOM kill) on one sample."""
    if any(s.key == "g0004" for s in batch):
        os._exit(3)
    return check_batch(batch, cfg)


@pytest.mark.faults
@pytest.mark.timeout(60)  # ~1-5 s; a hang here was a ProcessPoolExecutor shutdown race (see workers._Pool)
def test_a_dying_worker_quarantines_only_its_sample(bad_shard_set) -> None:
    urls, expected, good = bad_shard_set
    cfg = replace(CFG, num_workers=2, batch_size=4, max_in_flight=3)
    samples = iter_raw(expand_sources(urls), cfg)
    results = list(check_all(samples, cfg, check=_crashing_check))
    reasons = {r.key: r.reason for r in results if isinstance(r, Bad)}
    assert reasons.pop("g0004") == "decoder_crash"
    assert {r.info["source_key"] for r in results if isinstance(r, Good)} == good - {"g0004"}
    # g0003's second copy is only a duplicate once ingest compares keys; everything else keeps its reason
    assert reasons == {k: v for k, v in expected.items() if k != "g0003"}


def _dies_or_dawdles(batch, cfg):
    """Kills its process on key "crash" (first leaving a mark at the sample's source path); takes 1 s over "slow"."""
    for s in batch:
        if s.key == "crash":
            Path(s.source).touch()
            os._exit(3)
        if s.key == "slow":
            time.sleep(1.0)
    return [Good(s.source, s.key, {}, b"") for s in batch]


@pytest.mark.faults
@pytest.mark.timeout(60)
def test_a_death_while_input_is_read_and_a_slow_sample(tmp_path) -> None:
    # The worker dies while the parent is still reading input; the next batch must go to a fresh worker
    # (ProcessPoolExecutor raised BrokenProcessPool from submit here). A slow but live sample is never a crash.
    mark = tmp_path / "crashed"

    def samples():
        yield from (RawSample(str(mark), k) for k in ("a0", "a1", "crash", "a3"))
        while not mark.exists():
            time.sleep(0.01)
        time.sleep(0.3)  # the parent has seen the death by now
        yield from (RawSample(str(mark), "slow" if i == 5 else f"b{i}") for i in range(10))

    cfg = replace(CFG, num_workers=2, batch_size=4, max_in_flight=2)
    out = list(check_all(samples(), cfg, check=_dies_or_dawdles))
    assert [r.key for r in out] == ["a0", "a1", "crash", "a3"] + ["slow" if i == 5 else f"b{i}" for i in range(10)]
    assert [r.key for r in out if isinstance(r, Bad)] == ["crash"] and out[2].reason == "decoder_crash"


def test_batches_close_on_count_or_bytes() -> None:
    samples = [RawSample("s", str(i), {"png": bytes(100)}) for i in range(10)]
    assert [len(b) for b in batches(iter(samples), 4)] == [4, 4, 2]
    assert [len(b) for b in batches(iter(samples), 4, max_bytes=250)] == [3, 3, 3, 1]


def test_key_rules() -> None:
    assert split_key("dir/000123.jpg") == ("dir/000123", "jpg")
    assert split_key("a.b.JSON") == ("a", "b.json")
    assert is_unsafe("../x.png") and is_unsafe("/etc/x.txt") and is_unsafe("a/../../b.png") and is_unsafe("C:x.png")
    assert not is_unsafe("a/b..c.png")


@pytest.fixture()
def s3(monkeypatch):
    """A local moto S3 server; credentials and endpoint only via env and fsspec config, as for real buckets."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": f"http://{host}:{port}"})
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("bucket")
    yield fs
    fsspec.filesystem("s3").clear_instance_cache()
    server.stop()


@pytest.mark.smoke
def test_ingest_from_and_to_s3(s3, bad_shard_set) -> None:
    urls, expected, good = bad_shard_set
    for u in urls:
        s3.put(u, f"bucket/raw/{u.rsplit('/', 1)[1]}")
    ingest(["s3://bucket/raw"], "s3://bucket/out/ingest", CFG)
    s3.invalidate_cache()
    _check("s3://bucket/out/ingest", expected, good, len(good))
