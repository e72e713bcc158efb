"""Hostile input: member names and manifest keys that try to escape, decompression bombs, oversized members."""

from __future__ import annotations

import struct
import tarfile
import zlib
from pathlib import Path

import pandas as pd
import pytest

from components.data import sources, tarstream
from components.data.config import IngestConfig
from components.data.ingest import ingest
from components.data.sources import is_unsafe
from components.data.storage import member_bytes
from tests.components.data.conftest import _finish, png, sample

pytestmark = pytest.mark.faults
CFG = IngestConfig(num_workers=0, progress=False)


def _reasons(out: Path) -> dict[str, str]:
    q = pd.read_parquet(out / "quarantine.parquet")
    return dict(zip(q["key"], q["reason"]))


def _pax_member(path: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(path)
    info.size = len(data)
    return info.tobuf(tarfile.PAX_FORMAT) + data + bytes(-len(data) % 512)


def _gnu_long_member(path: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(path)
    info.size = len(data)
    return info.tobuf(tarfile.GNU_FORMAT) + data + bytes(-len(data) % 512)


def test_member_names_cannot_escape_the_output(tmp_path: Path) -> None:
    deep = "x/" * 60 + "../../../../" * 40 + "long"  # > 100 bytes: goes through PAX / GNU long-name headers
    body = sample("ok", png(seed=1), b"fine")
    body += sample("../../escape", png(seed=2), b"dot-dot")
    body += sample("/etc/abs", png(seed=3), b"absolute")
    body += _pax_member("../pax-escape.png", png(seed=4)) + _pax_member("../pax-escape.txt", b"pax")
    body += _gnu_long_member(deep + ".png", png(seed=5)) + _gnu_long_member(deep + ".txt", b"gnu")
    body += member_bytes("ctl\x01name.png", png(seed=6)) + member_bytes("ctl\x01name.txt", b"control char")
    for kind, target in [(tarfile.SYMTYPE, "/etc/passwd"), (tarfile.LNKTYPE, "../../outside")]:
        link = tarfile.TarInfo(f"link{kind.decode()}.png")
        link.type, link.linkname = kind, target
        body += link.tobuf(tarfile.USTAR_FORMAT) + member_bytes(f"link{kind.decode()}.txt", b"a link")
    d = tmp_path / "in" / "deep"
    d.mkdir(parents=True)
    (d / "shard.tar").write_bytes(_finish(body))
    manifest = d / "m.csv"
    (d / "img.png").write_bytes(png(seed=7))
    manifest.write_text("key,image,caption\n../../m-escape,img.png,key escape\n/abs-key,img.png,abs\nm-ok,img.png,fine\n")

    r = ingest([str(d / "shard.tar"), str(manifest)], str(tmp_path / "out"), CFG)
    got = _reasons(tmp_path / "out")
    assert r.n_ingested == 2  # ok and m-ok
    assert got == {
        "../../escape": "unsafe_path", "/etc/abs": "unsafe_path", "../pax-escape": "unsafe_path", deep: "unsafe_path",
        "ctl\x01name": "unsafe_path", "link2": "unsupported_member", "link1": "unsupported_member",
        "../../m-escape": "unsafe_path", "/abs-key": "unsafe_path",
    }  # fmt: skip
    # nothing was written outside the output directory, and the output shards hold only safe names
    files = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()}
    assert files == {"in", "out"} and not Path("/etc/abs.png").exists()
    for shard in (tmp_path / "out" / "shards").glob("*.tar"):
        with tarfile.open(shard) as tar:
            members = tar.getmembers()
        assert all(m.isfile() and not is_unsafe(m.name) for m in members)
        assert sorted({m.name.split(".")[0].split("_", 1)[1] for m in members}) == ["m-ok", "ok"]  # TAG_KEY


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels followed by a tiny IDAT: a bomb if anyone allocated it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("num_workers", [0, 1])
def test_decompression_bombs_are_quarantined_not_decoded(tmp_path: Path, num_workers: int) -> None:
    import io

    from PIL import Image

    huge = io.BytesIO()
    Image.new("1", (12000, 12000)).save(huge, format="PNG")  # 144 Mpx of 1-bit: ~20 KB on disk, 432 MB as RGB
    body = sample("claims", _png_header_only(200_000, 200_000), b"40 Gpx header")
    body += sample("real", huge.getvalue(), b"a real 144 Mpx image")
    body += sample("wide", _png_header_only(2**31 - 1, 1), b"2^31 wide")
    body += sample("ok", png(seed=1), b"fine")
    (tmp_path / "s.tar").write_bytes(_finish(body))
    cfg = IngestConfig(num_workers=num_workers, progress=False)  # default max_pixels: 50 Mpx
    r = ingest([str(tmp_path / "s.tar")], str(tmp_path / "out"), cfg)
    assert r.n_ingested == 1
    assert _reasons(tmp_path / "out") == dict.fromkeys(["claims", "real", "wide"], "decompression_bomb")


def test_oversized_members_are_skipped_unread(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tarstream, "MAX_MEMBER_BYTES", 4096)
    monkeypatch.setattr(sources, "MAX_MEMBER_BYTES", 4096)
    big = png(200, 200, seed=9)
    assert len(big) > 4096
    body = sample("big", big, b"too many bytes") + sample("ok", png(seed=1), b"fine") + sample("ok2", png(seed=2), b"fine")
    (tmp_path / "s.tar").write_bytes(_finish(body))
    (tmp_path / "big.png").write_bytes(big)
    (tmp_path / "m.csv").write_text("key,image,caption\nmbig,big.png,large file\n")
    r = ingest([str(tmp_path / "s.tar"), str(tmp_path / "m.csv")], str(tmp_path / "out"), CFG)
    assert r.n_ingested == 2 and _reasons(tmp_path / "out") == {"big": "member_too_large", "mbig": "member_too_large"}


def test_a_shard_cut_at_a_member_boundary_is_reported(tmp_path: Path) -> None:
    """No end-of-archive blocks: the writer died; the last sample may be missing members, so it is not trusted."""
    a, b = sample("a", png(seed=1), b"first"), sample("b", png(seed=2), b"second")
    (tmp_path / "s.tar").write_bytes(a + b[: len(b) - len(member_bytes("b.json", b"{}"))])  # b lost its .json and the end
    (tmp_path / "empty.tar").write_bytes(b"")
    r = ingest([str(tmp_path / "s.tar"), str(tmp_path / "empty.tar")], str(tmp_path / "out"), CFG)
    got = _reasons(tmp_path / "out")
    assert r.n_ingested == 1 and got == {"b": "truncated_tar", "@0": "truncated_tar"}
