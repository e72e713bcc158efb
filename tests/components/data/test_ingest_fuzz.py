"""Ingest at volume on a seeded fuzz corpus: every bad-input case the ingest knows, plus random corruption.

200 tar shards of 5-20 samples (and a few manifests, a gzipped shard, a missing shard) mix good
samples, each known quarantine reason, randomly corrupted image bytes, and random damage to the
tar bytes themselves (flipped bytes, truncation, a garbage block). Whatever the input, ingest must
not crash and its counts must reconcile with what was generated.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from components.data.config import IngestConfig
from components.data.ingest import ingest
from components.data.storage import BLOCK, RECORD, member_bytes

pytestmark = pytest.mark.faults

IMAGE_REASONS = {"undecodable_image", "truncated_image", "decompression_bomb", "image_too_small", "bad_aspect_ratio"}
TAR_REASONS = {"truncated_tar", "corrupt_tar_member", "unsupported_member"}
CFG = IngestConfig(num_workers=2, batch_size=32, max_pixels=1_000_000, samples_per_shard=500, progress=False)


def _png(rng: random.Random, w: int = 24, h: int = 24, fmt: str = "PNG") -> bytes:
    img = Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (3000, 3000)).save(buf, format="PNG")  # 9 Mpx > max_pixels, ~9 KB on disk
    return buf.getvalue()


BOMB = _bomb()


@dataclass
class Corpus:
    """What was generated, per sample key: the expected reason (None = ingested) or the allowed reasons."""

    expected: dict[str, str | None] = field(default_factory=dict)
    either: dict[str, set[str]] = field(default_factory=dict)  # randomly corrupted: ingested, or one of these
    source_of: dict[str, str] = field(default_factory=dict)
    damaged: dict[str, int] = field(default_factory=dict)  # shard url -> offset of its first damaged byte
    spans: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # shard url -> [(key, end offset)]
    n_second_copies: int = 0  # samples that repeat an earlier good key (quarantined as duplicate_key)
    sources: list[str] = field(default_factory=list)

    def add(self, key: str, source: str, reason: str | None) -> None:
        self.expected[key] = reason
        self.source_of[key] = source


def _sample(key: str, img: bytes | None, cap: bytes | None, ext: str = "png") -> bytes:
    out = member_bytes(f"{key}.{ext}", img) if img is not None else b""
    out += member_bytes(f"{key}.txt", cap) if cap is not None else b""
    return out + member_bytes(f"{key}.json", b"{}")


def _case(rng: random.Random, key: str, good_keys: list[str], kind: str = "") -> tuple[str, bytes, str | None]:
    """One sample: (key as recorded, member bytes, expected reason; None = good, "?" = random corruption)."""
    allow_dup = kind != "no-dup"
    kind = kind if kind in ("good", "corrupt_image") else rng.choices(["good", "corrupt_image", "known"], weights=[55, 20, 25])[0]
    if kind == "good":
        side = rng.choice([24, 32])
        return key, _sample(key, _png(rng, side, side), f"caption {key}".encode()), None
    if kind == "corrupt_image":
        data = bytearray(_png(rng, 24, 24, rng.choice(["PNG", "JPEG"])))
        how = rng.choice(["flip", "truncate", "garbage_head"])
        if how == "flip":
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif how == "truncate":
            data = data[: rng.randrange(1, len(data))]
        else:
            data[: rng.randint(1, 32)] = rng.randbytes(32)
        return key, _sample(key, bytes(data), f"corrupted {key}".encode()), "?"
    reason = rng.choice(
        ["undecodable_image", "truncated_image", "zero_byte_image", "missing_caption", "missing_image", "empty_caption",
         "caption_too_long", "non_utf8_caption", "decompression_bomb", "bad_aspect_ratio", "image_too_small",
         "unsafe_path", "corrupt_tar_member", "unsupported_member", "duplicate_key"]
    )  # fmt: skip
    cap = f"caption {key}".encode()
    if reason == "undecodable_image":
        return key, _sample(key, b"not an image " + rng.randbytes(20), cap), reason
    if reason == "truncated_image":
        png = _png(rng, 32, 32)
        return key, _sample(key, png[: len(png) // 2], cap), reason
    if reason == "zero_byte_image":
        return key, _sample(key, b"", cap), reason
    if reason == "missing_caption":
        return key, _sample(key, _png(rng), None), reason
    if reason == "missing_image":
        return key, _sample(key, None, cap), reason
    if reason == "empty_caption":
        return key, _sample(key, _png(rng), rng.choice([b"", b"   ", b" \n\t "])), reason
    if reason == "caption_too_long":
        return key, _sample(key, _png(rng), b"x" * rng.randint(1001, 3000)), reason
    if reason == "non_utf8_caption":
        return key, _sample(key, _png(rng), b"caf\xe9 \xff" + rng.randbytes(3).replace(b"\x00", b"\xff")), reason
    if reason == "decompression_bomb":
        return key, _sample(key, BOMB, cap), reason
    if reason == "bad_aspect_ratio":
        return key, _sample(key, _png(rng, 300, 10), cap), reason
    if reason == "image_too_small":
        return key, _sample(key, _png(rng, 4, 24), cap), reason
    if reason == "unsafe_path":
        bad = rng.choice([f"../{key}", f"/abs/{key}", f"a/../../{key}", f"/{key}"])
        return bad, _sample(bad, _png(rng), cap), reason
    if reason == "corrupt_tar_member":
        m = bytearray(member_bytes(f"{key}.png", _png(rng)))
        m[101] ^= 0x01  # the mode field: the header checksum no longer matches
        return key, bytes(m) + member_bytes(f"{key}.txt", cap), reason
    if reason == "unsupported_member":
        link = tarfile.TarInfo(f"{key}.png")
        link.type, link.linkname = rng.choice([(tarfile.SYMTYPE, "/etc/passwd"), (tarfile.LNKTYPE, "../../x")])
        return key, link.tobuf(tarfile.USTAR_FORMAT) + member_bytes(f"{key}.txt", cap), reason
    # duplicate_key: an earlier good key of the same shard again (the earlier copy stays ingested; keys are names
    # inside one source), not the one just before (consecutive members of one key are one sample), or one member twice
    if len(good_keys) > 1 and allow_dup and rng.random() < 0.7:
        dup = good_keys.pop(rng.randrange(len(good_keys) - 1))
        return dup, _sample(dup, _png(rng), b"second copy"), "dup-of-earlier"
    return key, member_bytes(f"{key}.png", _png(rng)) + _sample(key, _png(rng), cap), reason


def _finish(body: bytes) -> bytes:
    return body + bytes(2 * BLOCK) + bytes(-(len(body) + 2 * BLOCK) % RECORD)


def build_corpus(root: Path, n_shards: int = 200, seed: int = 0) -> Corpus:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    c = Corpus()
    for s in range(n_shards):
        good_keys: list[str] = []  # good keys of this shard (if intact), candidates for a later duplicate
        url = str(root / f"shard-{s:06d}.tar{'.gz' if s == 7 else ''}")  # one shard gzipped
        damage = rng.random()
        truncate = s == n_shards - 1 or damage < 0.05  # cut inside the last sample: it is reported truncated_tar
        damaged = not truncate and damage < 0.15  # random damage to the archive bytes
        body, spans, n = b"", [], rng.randint(5, 20)
        for i in range(n):
            kind = "good" if truncate and i == n - 1 else "no-dup" if truncate or damaged else ""
            key, data, reason = _case(rng, f"s{s:03d}k{i:02d}", good_keys, kind)
            body += data
            spans.append((key, len(body)))
            if reason == "?":
                c.either[key] = IMAGE_REASONS | {"decoder_crash"}
                c.source_of[key] = url
            elif reason == "dup-of-earlier":
                c.n_second_copies += 1
            else:
                c.add(key, url, reason)
                if reason is None and not (truncate or damaged):
                    good_keys.append(key)
        tar = _finish(body)
        if truncate:
            tar = tar[: spans[-2][1] + BLOCK + 7 if len(spans) > 1 else 100]
            c.expected[spans[-1][0]] = "truncated_tar"
        elif damaged:
            tar, c.damaged[url] = _damage(rng, bytearray(tar))
        c.spans[url] = spans
        Path(url).write_bytes(gzip.compress(tar) if url.endswith(".gz") else tar)
        c.sources.append(url)
    missing = str(root / "shard-missing.tar")  # listed but absent: one unreadable_source record
    c.sources.append(missing)
    c.add(f"<{missing}>", missing, "unreadable_source")
    _manifests(root, rng, c)
    return c


def _damage(rng: random.Random, tar: bytearray) -> tuple[bytes, int]:
    how = rng.choice(["flip", "truncate", "garbage_block"])
    if how == "flip":
        pos = sorted(rng.randrange(len(tar)) for _ in range(rng.randint(1, 12)))
        for p in pos:
            tar[p] ^= 1 << rng.randrange(8)
        return bytes(tar), pos[0]
    if how == "truncate":
        cut = rng.randrange(1, len(tar))
        return bytes(tar[:cut]), cut - 1  # a sample ending exactly at the cut may be reported incomplete too
    start = rng.randrange(len(tar) // BLOCK) * BLOCK
    tar[start : start + BLOCK] = rng.randbytes(BLOCK)
    return bytes(tar), start


def _manifests(root: Path, rng: random.Random, c: Corpus) -> None:
    """CSV manifests with the manifest-only cases, and one lacking its columns."""
    img_dir = root / "images"
    img_dir.mkdir()
    for m in range(3):
        url = str(root / f"manifest-{m}.csv")
        rows = ["key,image,caption"]
        for i in range(10):
            key = f"man{m}r{i}"
            kind = rng.choice(["good", "good", "missing_file", "blank_caption", "zero", "junk", "unsafe_key"])
            if kind in ("good", "unsafe_key"):
                (img_dir / f"{key}.png").write_bytes(_png(rng))
                rec_key = key if kind == "good" else rng.choice([f"../{key}", f"/tmp/{key}", f"a/../../{key}"])
                rows.append(f"{rec_key},images/{key}.png,manifest caption {i}")
                c.add(rec_key, url, None if kind == "good" else "unsafe_path")
            elif kind == "missing_file":
                rows.append(f"{key},images/absent-{key}.png,gone")
                c.add(key, url, "missing_image")
            elif kind == "blank_caption":
                (img_dir / f"{key}.png").write_bytes(_png(rng))
                rows.append(f"{key},images/{key}.png,")
                c.add(key, url, "empty_caption")
            else:
                (img_dir / f"{key}.png").write_bytes(b"" if kind == "zero" else b"junk" * 5)
                rows.append(f"{key},images/{key}.png,a caption")
                c.add(key, url, "zero_byte_image" if kind == "zero" else "undecodable_image")
        Path(url).write_text("\n".join(rows) + "\n")
        c.sources.append(url)
    url = str(root / "manifest-nocols.csv")
    Path(url).write_text("path,text\na.png,x\n")
    c.sources.append(url)
    c.add(f"<{url}>", url, "unreadable_source")


def test_fuzz_corpus_reconciles(tmp_path: Path) -> None:
    corpus = build_corpus(tmp_path / "in")
    r = ingest(corpus.sources, str(tmp_path / "out"), CFG)
    meta = pd.read_parquet(tmp_path / "out" / "metadata.parquet")
    q = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())

    # the books balance: every record is ingested or quarantined with a reason, and the files agree with the counts
    assert r.n_input == r.n_ingested + r.n_quarantined == len(meta) + len(q) == summary["n_input"]
    assert meta["key"].is_unique
    assert (q["reason"].str.len() > 0).all() and (q["detail"].str.len() > 0).all()
    assert Counter(q["reason"]) == Counter(summary["quarantine_by_reason"])

    ingested = set(meta["source_key"])  # the generated keys are unique across sources
    reasons: dict[str, list[str]] = {}
    for src, key, reason in zip(q["source"], q["key"], q["reason"]):
        reasons.setdefault(f"<{src}>" if key == "" else key, []).append(reason)
    loose = _after_damage(corpus)  # samples at or after a shard's first damaged byte: only reconciliation holds

    # undamaged input: each sample ingested exactly once or quarantined with exactly the generated reason
    for key, reason in corpus.expected.items():
        if key in loose:
            continue
        got = reasons.get(key, [])
        if reason is None:
            assert key in ingested and got in ([], ["duplicate_key"]), (key, got)  # a later second copy is quarantined
        else:
            assert key not in ingested and got == [reason], (key, reason, got)
    for key, allowed in corpus.either.items():
        if key not in loose:
            got = reasons.get(key, [])
            assert (key in ingested) != bool(got) and set(got) <= allowed, (key, got)  # exactly one of the two
    assert sum(rs.count("duplicate_key") for k, rs in reasons.items() if corpus.expected.get(k, "") is None) == (
        corpus.n_second_copies
    )

    # per-reason counts over undamaged sources equal the generated ones; random image corruption only adds image reasons
    clean = q[~q["source"].isin(corpus.damaged)]
    want = Counter(v for k, v in corpus.expected.items() if v and corpus.source_of[k] not in corpus.damaged)
    want["duplicate_key"] += corpus.n_second_copies
    got = Counter(clean["reason"])
    corrupted_quarantined = sum(1 for k in corpus.either if k in reasons and corpus.source_of[k] not in corpus.damaged)
    extra = {k: got[k] - want[k] for k in set(got) | set(want) if got[k] != want[k]}
    assert set(extra) <= IMAGE_REASONS | {"decoder_crash"} and all(v > 0 for v in extra.values()), extra
    assert sum(extra.values()) == corrupted_quarantined

    # damaged shards: a sample may be lost only where the reader reported a tar-level problem in that shard
    for url in corpus.damaged:
        problems = set(q[q["source"] == url]["reason"]) & TAR_REASONS
        lost = [k for k, _ in corpus.spans[url] if k in loose and k not in ingested and k not in reasons]
        assert not lost or problems, f"{lost} in {url} vanished without a tar-level quarantine record"
    invented = ingested - set(corpus.expected) - set(corpus.either)
    assert not invented, sorted(invented)[:10]  # damage never makes up a sample
    n_generated = len(corpus.expected) + len(corpus.either) + corpus.n_second_copies
    print(
        f"fuzz: {len(corpus.sources)} sources ({len(corpus.damaged)} damaged), {n_generated} samples generated, "
        f"{r.n_input} records = {r.n_ingested} ingested + {r.n_quarantined} quarantined in {r.seconds:.1f} s; "
        f"{dict(sorted(r.by_reason.items()))}"
    )


def _after_damage(c: Corpus) -> set[str]:
    return {key for url, first in c.damaged.items() for key, end in c.spans[url] if end > first}
