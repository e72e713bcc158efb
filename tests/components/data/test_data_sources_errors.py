"""A broken source is one quarantine record; a bug of ours in the reader is an exception, not a quarantine."""

from pathlib import Path

import pytest

import components.data.sources as sources


def test_missing_and_non_tar_sources_are_records(tmp_path: Path) -> None:
    [missing] = list(sources.iter_tar_samples(str(tmp_path / "absent.tar")))
    assert missing.reason == "unreadable_source" and "FileNotFoundError" in missing.detail
    [bad_url] = list(sources.iter_tar_samples("nosuchprotocol://bucket/x.tar"))
    assert bad_url.reason == "unreadable_source"


def test_a_bug_in_the_reader_surfaces(tmp_path: Path, monkeypatch) -> None:
    shard = tmp_path / "s.tar"
    shard.write_bytes(b"\0" * 1024)

    def buggy(*_a, **_k):
        raise TypeError("a bug of ours")

    monkeypatch.setattr(sources, "iter_tar", buggy)
    with pytest.raises(TypeError, match="a bug of ours"):
        list(sources.iter_tar_samples(str(shard)))
