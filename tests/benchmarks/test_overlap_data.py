"""benchmarks/overlap_data.py: pooling several plantings (seeds) sums counts and derives rates from the sums; the clipart
loader keeps one file per drawing and no blank drawing."""

import hashlib
import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from overlap_data import _background, composite, drop_same_drawing, load_clipart, pool_overlap, score_overlap
from PIL import Image, ImageDraw


def _planting(found_jpeg: bool, clean_flag: bool) -> dict:
    """Three eval rows: a JPEG copy (row 0), a flip (row 1), a clean image (row 2)."""
    ev = [("a", None, "clipart"), ("b", None, "clipart"), ("c", None, "clipart")]
    truth = {0: ("ta", "jpeg_q30-90", "clipart"), 1: ("tb", "hflip", "clipart")}
    matches = {0: ["ta", "tx"] if found_jpeg else ["tx"], 1: ["tb"]}
    if clean_flag:
        matches[2] = ["ty"]
    return score_overlap(matches, ev, truth)


def test_pooled_counts_are_sums_and_rates_come_from_them() -> None:
    one, two = _planting(True, False), _planting(False, True)
    assert one["flagged_right"] == 2 and two["flagged_right"] == 1  # a flagged flip holding its copy is right
    p = pool_overlap([one, two])
    assert p["found_by_family"] == {"jpeg_q30-90": "1/2", "hflip": "2/2"}
    assert p["recall"] == 0.5 and p["min_family_recall"] == 0.5 and p["flip_recall"] == 1.0
    assert (p["true_pairs"], p["false_pairs"]) == (3, 3)
    assert p["pair_precision"] == 0.5
    assert p["flagged_eval"] == 2 + 3 and p["image_precision"] == pytest.approx(3 / 5)
    assert (p["clean_eval_flagged"], p["clean_eval"]) == (1, 2)


def _drawing(emblem: bool = False) -> Image.Image:
    """A transparent line drawing (a thin black outline with pins) as an icon set ships it; `emblem`: one more disc."""
    im = Image.new("RGBA", (120, 160), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.rounded_rectangle((30, 10, 90, 150), 8, outline=(0, 0, 0, 255), width=2)
    for y in range(20, 140, 12):
        d.line((45, y, 75, y), fill=(60, 60, 60, 255), width=1)
    if emblem:
        d.ellipse((50, 60, 80, 90), fill=(200, 30, 30, 255))
    return im


def test_a_drawing_filed_under_two_names_is_one_item_and_blank_drawings_are_none(tmp_path: Path) -> None:
    """The same drawing in two files of different bytes (so on two background colours: an outline drawing's
    anti-aliased pixels then differ by the colours' difference) is kept once; a variant with an emblem stays (a hard
    negative); blank files (an empty layer) are no item."""
    (tmp_path / "icons").mkdir()
    _drawing().save(tmp_path / "icons" / "connector.png")
    _drawing().save(tmp_path / "icons" / "pinout_by_someone.png", pnginfo=_text("author", "x"))
    _drawing(emblem=True).save(tmp_path / "icons" / "connector_red.png")
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(tmp_path / "icons" / "nopen.png")
    Image.new("RGBA", (64, 64), (255, 255, 255, 0)).save(tmp_path / "icons" / "empty.png", pnginfo=_text("x", "y"))
    names = [n for n, _ in load_clipart(str(tmp_path))]
    assert names == ["connector", "connector_red"], names
    # shown on their own backgrounds (cream and grey here), the two files are not the same picture to the 32 px rule
    shown = []
    for f in ("connector", "pinout_by_someone"):
        data = (tmp_path / "icons" / f"{f}.png").read_bytes()
        shown.append((f, composite(Image.open(io.BytesIO(data)), _background(hashlib.sha256(data).digest()))))
    assert shown[0][1].getpixel((0, 0)) != shown[1][1].getpixel((0, 0))
    assert len(drop_same_drawing(shown)) == 2


def _text(key: str, value: str):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(key, value)
    return info
