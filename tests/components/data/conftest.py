"""Fixtures: shard sets and manifests containing every bad-input case, with the expected quarantine reason per key."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from components.data.storage import BLOCK, RECORD, member_bytes


def png(w: int = 32, h: int = 32, seed: int = 0, mode: str = "RGB") -> bytes:
    """A small valid PNG (noise, so every image has a distinct hash)."""
    img = Image.effect_noise((w, h), 40 + seed).convert(mode) if mode != "L" or seed else Image.new(mode, (w, h))
    if mode == "RGB":
        img = Image.merge("RGB", [img.split()[0], Image.new("L", (w, h), seed * 7 % 256), img.split()[0]])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _finish(body: bytes) -> bytes:
    return body + bytes(2 * BLOCK) + bytes(-(len(body) + 2 * BLOCK) % RECORD)


def sample(key: str, img: bytes | None, caption: bytes | None, ext: str = "png") -> bytes:
    out = b""
    if img is not None:
        out += member_bytes(f"{key}.{ext}", img)
    if caption is not None:
        out += member_bytes(f"{key}.txt", caption)
    return out + member_bytes(f"{key}.json", b"{}")


def bad_shards(tmp: Path) -> tuple[list[str], dict[str, str], set[str]]:
    """Write shard-000000.tar (every bad member kind) and shard-000001.tar (truncated); returns urls, {key: reason}, good keys."""
    good = {f"g{i:04d}" for i in range(12)}
    expected = {
        "undec": "undecodable_image", "trunc": "truncated_image", "zero": "zero_byte_image",
        "nocap": "missing_caption", "noimg": "missing_image", "empty": "empty_caption", "long": "caption_too_long",
        "nonutf": "non_utf8_caption", "bomb": "decompression_bomb", "wide": "bad_aspect_ratio",
        "../evil": "unsafe_path", "/abs/evil": "unsafe_path", "corrupt": "corrupt_tar_member", "link": "unsupported_member",
        "t0002": "truncated_tar", "g0003": "duplicate_key",
    }  # fmt: skip
    body = b"".join(sample(f"g{i:04d}", png(seed=i), f"good caption {i}".encode()) for i in range(6))
    valid = png(seed=99)
    body += sample("undec", b"this is not an image", b"x")
    body += sample("trunc", valid[: len(valid) // 2], b"cut in half")
    body += sample("zero", b"", b"empty file")
    body += sample("nocap", png(seed=50), None)
    body += sample("noimg", None, b"caption without image")
    body += sample("empty", png(seed=51), b"  \n\t ")
    body += sample("long", png(seed=52), b"x" * 2000)
    body += sample("nonutf", png(seed=53), b"caf\xe9 \xff\xfe")
    big = io.BytesIO()
    Image.new("L", (3000, 3000)).save(big, format="PNG")  # 9 Mpx, ~9 KB on disk
    body += sample("bomb", big.getvalue(), b"a bomb")
    body += sample("wide", png(400, 10, seed=54), b"a very wide image")
    body += sample("../evil", png(seed=55), b"escape attempt")
    body += sample("/abs/evil", png(seed=56), b"absolute path")
    corrupt = bytearray(member_bytes("corrupt.png", png(seed=57)))
    corrupt[101] ^= 0x01  # mode field: header checksum no longer matches
    body += bytes(corrupt) + member_bytes("corrupt.txt", b"its caption")
    link = tarfile.TarInfo("link.png")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    body += link.tobuf(tarfile.USTAR_FORMAT) + member_bytes("link.txt", b"symlink")
    body += sample("g0003", png(seed=3), b"duplicate of g0003")  # the same key again in the same shard
    body += b"".join(sample(f"g{i:04d}", png(seed=i), f"good caption {i}".encode()) for i in range(6, 10))
    (tmp / "shard-000000.tar").write_bytes(_finish(body))
    # second shard: two good samples, then the archive is cut mid-member
    body = b"".join(sample(f"g{i:04d}", png(seed=i), f"good caption {i}".encode()) for i in (10, 11))
    cut = len(body) + BLOCK + 100
    body += sample("t0002", png(seed=60), b"never complete")
    (tmp / "shard-000001.tar").write_bytes(body[:cut])
    return [str(tmp / "shard-000000.tar"), str(tmp / "shard-000001.tar")], expected, good


def bad_manifest(tmp: Path) -> tuple[Path, dict[str, str], set[str]]:
    """A CSV manifest with images in tmp/images/, some rows bad; returns its path, {key: reason}, good keys."""
    (tmp / "images").mkdir(parents=True, exist_ok=True)
    rows = [b"key,image,caption"]
    good = set()
    for i in range(5):
        (tmp / "images" / f"m{i}.png").write_bytes(png(seed=70 + i))
        rows.append(f"m{i},images/m{i}.png,manifest caption {i}".encode())
        good.add(f"m{i}")
    (tmp / "abs.png").write_bytes(png(seed=80))
    rows.append(f"absolute,{tmp / 'abs.png'},an absolute path".encode())
    good.add("absolute")
    (tmp / "images" / "zero.png").write_bytes(b"")
    (tmp / "images" / "junk.png").write_bytes(b"junk bytes")
    rows += [
        b"gone,images/does_not_exist.png,missing file",
        b"blank,images/m0.png,",
        b"zero,images/zero.png,zero bytes",
        b"junk,images/junk.png,garbage",
        b"latin1,images/m1.png,caf\xe9",
        b"m2,images/m2.png,same key again",
    ]
    expected = {"gone": "missing_image", "blank": "empty_caption", "zero": "zero_byte_image",
                "junk": "undecodable_image", "latin1": "non_utf8_caption", "m2": "duplicate_key"}  # fmt: skip
    path = tmp / "manifest.csv"
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path, expected, good


@pytest.fixture()
def bad_shard_set(tmp_path: Path) -> tuple[list[str], dict[str, str], set[str]]:
    d = tmp_path / "shards"
    d.mkdir()
    return bad_shards(d)


@pytest.fixture()
def bad_manifest_set(tmp_path: Path) -> tuple[Path, dict[str, str], set[str]]:
    d = tmp_path / "manifest"
    d.mkdir()
    return bad_manifest(d)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> str:
    """OUT/ingest of the bad shard set: 12 good samples, 16 quarantined."""
    from components.data.config import IngestConfig
    from components.data.ingest import ingest

    d = tmp_path_factory.mktemp("bad")
    urls, _, _ = bad_shards(d)
    ingest(urls, str(d / "ingest"), IngestConfig(num_workers=0, max_pixels=1_000_000, progress=False))
    return str(d / "ingest")
