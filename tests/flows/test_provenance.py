"""The data version comes from DVC when data.dvc is current (no re-hash) and from hashing the files when it is not."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from flows import provenance


def test_data_version_reads_a_current_dvc_file_and_hashes_only_a_stale_one(tmp_path, monkeypatch) -> None:
    from dvc.repo import Repo

    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    for i in range(3):
        (raw / f"{i}.bin").write_bytes(os.urandom(1000))
    repo = Repo.init(str(tmp_path), no_scm=True)
    repo.add(str(tmp_path / "data"))
    repo.close()
    md5 = yaml.safe_load((tmp_path / "data.dvc").read_text())["outs"][0]["md5"]
    hashed: list[str] = []
    real = provenance.hash_files
    monkeypatch.setattr(provenance, "hash_files", lambda fs, root, files: hashed.append(root) or real(fs, root, files))

    assert provenance.data_version(str(raw)) == f"dvc:{md5}" and hashed == []  # current: DVC's md5, nothing hashed
    (raw / "0.bin").write_bytes(b"changed")  # the workspace no longer matches data.dvc
    stale = provenance.data_version(str(raw))
    assert stale.startswith("sha256:") and stale.endswith(":3files") and len(hashed) == 1
    assert provenance.data_version(str(raw)) == stale and len(hashed) == 1  # asked again in the same run: remembered
    outside = tmp_path.parent / f"{tmp_path.name}-plain"  # no DVC project above it: hashed
    outside.mkdir()
    (outside / "x.bin").write_bytes(b"x")
    assert provenance.data_version(str(outside)).startswith("sha256:") and len(hashed) == 2
    assert provenance.data_version(str(Path(tmp_path / "nope"))) == "missing"
