"""A process SIGKILLed while writing a tar shard (synth or ingest): the half shard is never published or taken for
whole, and a re-run produces exactly the output of an uninterrupted run (and removes the killed run's debris)."""

import hashlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from components.data.config import IngestConfig, SynthConfig
from components.data.ingest import ingest
from components.data.synth import build_synth, synth_is_current
from tests.kill import run_killed

pytestmark = pytest.mark.faults

SYNTH = SynthConfig(n_train=60, samples_per_shard=20, n_eval_per_class=2, n_compositional_per_pair=1, n_retrieval=5,
                    n_planted_duplicates=2, num_workers=0)  # fmt: skip
INGEST = IngestConfig(num_workers=0, samples_per_shard=25, progress=False)


def _digests(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def test_synth_killed_mid_shard_then_rerun_matches_clean_run(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    run_killed(
        f"""
        from components.data import synth
        from components.data.config import SynthConfig
        from components.data.storage import url_to_fs
        write_bytes = synth.write_bytes
        def half_then_die(url, data, retry=None):
            if url.endswith("shard-000001.tar"):
                fs, path = url_to_fs(url)
                with fs.open(path, "wb") as f:
                    f.write(data[: len(data) // 2])
                die()
            write_bytes(url, data)
        synth.write_bytes = half_then_die
        synth.build_synth({str(out)!r}, SynthConfig(**{SYNTH.__dict__!r}))
        """,
        tmp_path,
    )
    debris = [p for p in tmp_path.iterdir() if p.name.startswith(".raw.tmp-")]
    halves = [p for d in debris for p in d.rglob("shard-000001.tar")]
    assert halves and halves[0].stat().st_size > 0, "the kill left no half shard: the fault was not injected"
    assert not out.exists() and not synth_is_current(str(out), SYNTH)  # nothing published: the synth stage re-runs

    build_synth(str(out), SYNTH)
    clean = tmp_path / "clean"
    build_synth(str(clean), SYNTH)
    assert _digests(out) == _digests(clean)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".raw.")]  # the killed run's debris is gone


def test_ingest_killed_mid_shard_then_rerun_matches_clean_run(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    build_synth(str(raw), SYNTH)
    sources = [str(raw / "train")]
    out = tmp_path / "ingest"
    run_killed(
        f"""
        from components.data import storage
        from components.data.config import IngestConfig
        from components.data.ingest import ingest
        write_raw = storage.TarShardWriter.write_raw
        def write_raw_or_die(self, buf):
            if self.shard == 1 and self.count == 30:  # 6th sample of the 2nd shard: half of it reaches the file
                self._file.write(buf[: len(buf) // 2 + 7]); self._file.flush()
                die()
            return write_raw(self, buf)
        storage.TarShardWriter.write_raw = write_raw_or_die
        ingest({sources!r}, {str(out)!r}, IngestConfig(**{INGEST.__dict__!r}))
        """,
        tmp_path,
    )
    halves = [p for d in tmp_path.glob(".ingest.tmp-*") for p in d.rglob("shard-000001.tar")]
    assert halves and halves[0].stat().st_size % 512 != 0, "no half-written shard: the fault was not injected"
    assert not out.exists()  # the stage's output never appeared: DVC / the flow see the stage as not done

    r = ingest(sources, str(out), INGEST)
    clean = tmp_path / "clean"
    ingest(sources, str(clean), INGEST)
    assert r.n_ingested == 60 and r.n_shards == 3
    assert _digests(out / "shards") == _digests(clean / "shards")
    assert pq.read_table(out / "metadata.parquet").equals(pq.read_table(clean / "metadata.parquet"))
    assert not list(tmp_path.glob(".ingest.*"))
