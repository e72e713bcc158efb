"""Dense alignment verification of candidate pairs (OpenCV ECC): same picture under rescale + crop + shift + rotation?

For a pair (a, b) of 64 px thumbnails, `EccVerifier` estimates the affine map that carries b onto a by maximising
their enhanced correlation coefficient (`cv2.findTransformECC`, Evangelidis & Psarakis 2008), on luma (or on the
pair's principal colour component when luma has little contrast: a yellow object on a light-blue ground): first at 32
px from two starting points (the crop box that made the pair a candidate, see hashing.CROP_BOXES, and the identity; an
ECC run that stops without converging is retried with OpenCV's own Gaussian smoothing), then refined at 64 px (when
the refinement loses the correlation, the 32 px map is scored instead; when the 32 px correlation falls short of the
gate but not of the floor, ECC runs at 64 px from the starting points: dashed lines alias at 32 px). The map must
be plausible for a copy (each axis scaled 0.6-1.6x, aspect change <= 4/3, shear <= 0.15, rotation <= 12 degrees) and
the two frames must overlap by >= half of each. The score is the residual of a against b warped onto it, over the
overlap only (so the fill of a rotation or the strip a crop cut off does not count), each image blurred 1 px of the
other's frame where it samples the picture more finely (a crop's thumbnail does: the map's scale per axis), after one
gain (0.7-1.4) and an offset per channel, the 2% largest residuals trimmed; one border region (a corner square or a
band of 35% of the side: where a caption or logo goes) may be left out, the score then doubled, when what is left
keeps 70% of a's contrast; or the brighter image's clipped highlights may be censored (a brightened copy whose pastel
background went white: `_clipped`; the local term below then compares the clipped prediction). Grey pairs (either
image grey) are compared in grey; when the other image is saturated colour, the grey one must be its luma (gain ~1,
same mean: a grey copy, not a colour variant). Colour pairs where one image has lost most of the other's colour detail
are also scored, under the map that fits best, with both images' colour blurred as JPEG's 4:2:0 subsampling and
quantisation leave it (luma kept sharp), and keep the lower score. The residual is divided by a's contrast, as in
verify.AlignedVerifier. The score is at least 1/3 of the local peak: the largest RMS residual in a 9 px window (in
luma, blurred 1 px more, 1.5 px under a map that rescales or turns unless one image is grey and the other colour, a 5
px band at the overlap's edge and the left-out region excluded): look-alikes differ in one place (a folder's emblem, a
clock's hands, a keycap's digit) that the residual over the whole overlap averages away, where a copy's resampling and
JPEG residual is spread out. Each pair is scored under ECC's map and under its starting maps (ECC can be pulled off by
an overlay; when ECC cannot run at all, on a smooth field, the starting maps are still scored), and keeps the lowest
score. A pair where either image has a solid strip along one side that its background does not share (a copy shifted
by padding, then resized back: `pad.unpadded`) is scored again with the strip cut off and the rest resized to the
frame, and keeps the lower score: the strip's edge otherwise bleeds into the blurred overlap, and the screen rejects
the pair.

Why ECC and not only keypoints (verify.OrbVerifier): on 32-96 px images ORB finds few keypoints and RANSAC's
transform is off by a pixel or two, which leaves true 25% crops and rotations with residuals as high as those of
look-alikes (BENCHMARKS.md); the dense alignment brings them to 0.01-0.06 (real-image benchmark, 1k).
Cost: ~1.5-2.5 ms per pair on one CPU core, about half of it in ECC (the 32 px stage rejects most look-alikes:
correlation < 0.7); the local peak is computed only for maps whose residual beats the pair's best score so far. Pairs
are spread over the process's cores on threads (OpenCV releases the GIL): 2.0-2.6x faster on 2 cores than one thread.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import cv2
import numpy as np

from .colour import colour_detail, is_grey, saturation, soft_chroma
from .pad import unpadded
from .screen import FULL, GAIN_RANGE, Box, box_screen, box_warp
from .screen import LUMA as _LUMA

GATE_CC = 0.7  # correlation at 32 px below which ECC's map is not refined at 64 px (the starting maps are still scored)
KEEP_CONTRAST = 0.7  # an overlay hypothesis must leave this share of a's contrast outside the region it ignores
SCREEN = 0.6  # box_screen score above which a pair is rejected before alignment
# a pair whose top or bottom 60% band matches at the screen (box_screen same=True: hashing.BAND_BOXES) at or below this
# is aligned even when the whole frame fails the screen, and keeps the identity map when ECC's correlation is below
# the floor: a caption or logo over the rest of a low-texture copy. Real-image benchmark at 9.5k (2026-12-01): the
# overlay copies' bands score <= 0.031; 246 of the 9,349 candidates are at or below 0.1, 4 of them failing the screen.
OVERLAY_SCREEN = 0.1
FLOOR_CC = 0.5  # correlation at 32 px below which a pair is rejected outright
# a pair whose 32 px correlation is between FLOOR_CC and GATE_CC is aligned again at 64 px, from its starting points
# (FULL_RES_ITERS iterations; 0: off), and ECC's map is scored too when it reaches GATE_CC there. Dashed 1 px lines and
# fine texture alias at 32 px: crops of openclipart's table-border icons correlate 0.61-0.68 at 32 px and 0.94-1.0 at
# 64 px (tests/components/audit/data/aliased_crops.png). Real-image benchmark, 9.5k, v2 seeds 10-19 (2026-12-02): 25%
# crops 286 -> 288 and corner crops 291 -> 293 of 300, +1 clean eval image flagged (of 3,000), +1 false pair; v3
# seeds 0-9 in BENCHMARKS.md.
FULL_RES_ITERS = 25
PENALTY = 2.0  # score factor when a border region is left out (an overlay hypothesis)
# local difference: the score is at least LOCAL_WEIGHT x the largest RMS residual in a LOCAL_WINDOW px square (64 px
# thumbnails), over a's contrast. Look-alikes differ in one place (a folder's emblem, a clock's hands, a keycap's digit)
# that the residual over the whole overlap averages away; a copy's residual (resampling, JPEG) is spread out. On the
# real-image benchmark at 9.5k (ecc_threshold 0.12, candidates of 2026-12-01): false pairs 61 -> 27, true pairs 271 ->
# 269 (in luma and blurred 1 px more: without those, 21 and 256: chroma bleeding and thin lines; BENCHMARKS.md).
LOCAL_WEIGHT, LOCAL_WINDOW, LOCAL_MARGIN, LOCAL_BLUR = 1 / 3, 9, 5, 1.0
# a map that rescales or turns the picture (its linear part off the identity by more than RESAMPLED in any entry)
# moves thin lines across pixels, which thickens or thins them in one image: the local term then blurs by
# LOCAL_BLUR_RESAMPLED (not for a grey image against a colour one: EccVerifier._residual). Real-image benchmark, 9.5k,
# 3 seeds (2026-12-02): 25% crops +3, rotations +1, +6 false pairs (+3 clean eval images flagged of 900); 1.5 px for
# every map instead: the same gains, +12 false pairs, one overlay lost.
RESAMPLED, LOCAL_BLUR_RESAMPLED = 0.05, 1.5
# a colour pair is also scored with both images' colour blurred as JPEG leaves it (colour.soft_chroma), but only
# when one of the two has lost colour detail (mean |colour - colour blurred 3 px|) to at most
# JPEG_DETAIL of the other's: the JPEG copies the hypothesis found are at 0.09-0.58; independent renders of one shape
# on mottled grounds (the demo's dedup) at 0.83-1.0, and 4 of them passed without this (23 -> 27 near pairs).
JPEG_DETAIL = 0.7
# a grey image against a colour one is compared in luma, which lets any colour variant of a drawing through (a red and
# a grey LED, a yellow and a white disc): when the colour image is saturated (mean |RGB - luma| >= GREY_SATURATED), the
# grey one must be its luma, gain within GREY_GAIN of 1 and means within GREY_MEAN levels. Real-image benchmark, 9.5k,
# 3 seeds (2026-12-02): -11 false pairs (6 clean eval images), no true pair lost (grey copies: gain 1.00 +- 0.01, means
# within 0.3; brightened drawings whose pastel background went white are at saturation < 8).
GREY_SATURATED, GREY_GAIN, GREY_MEAN = 10.0, 0.1, 8.0
# ECC aligns luma, unless luma has less than PRINCIPAL_SHARE of the contrast of the pair's principal colour component
# (a yellow object on a light-blue ground): then that component. Real-image benchmark, 9.5k, 3 seeds: +2 (a lemon, a
# lime: 0.15-0.17 -> 0.02-0.03), no false pair (the principal component for every colour pair: +1 and -2 true pairs,
# +3 false pairs of smooth retina tiles; shares 0.35 and 0.5 measured the same there, but at 0.5 three pairs of
# independent renders in the demo's dedup passed: a green or pink disc on grey, luma at 0.40-0.46 of the component).
PRINCIPAL_SHARE = 0.35
# clipped highlights (a brightened copy): pixel-channels within CLIP_TOL of the brighter image's maximum are censored,
# tried when they make up >= CLIP_MIN_CENSORED of the overlap (a background gone white, not an object) and the
# uncensored pixels >= CLIP_MIN_SHARE. On the real-image benchmark (candidates of 2026-12-01, ecc_threshold 0.12):
# brightness x1.15 + contrast x0.9 copies found +4 at 9.5k (+2 at 1k), no false pair added at either size (CLIP_TOL 5:
# +4 and 1 false pair; 8: 2 false pairs). CLIP_MIN_CENSORED 0.05 censored the saturated disc (~7% of the frame) of the
# embedded renders and let 12 independent renders through dedup; 0.15-0.3 keep every real-image gain, 0.4 loses one.
CLIP_TOL, CLIP_MIN_SHARE, CLIP_MIN_CENSORED = 3.0, 0.05, 0.2
# border regions an overlay may cover: 4 corner squares, top and bottom bands (x0, y0, x1, y1)
_REGIONS: list[Box] = [
    (0, 0, 0.35, 0.35), (0.65, 0, 1, 0.35), (0, 0.65, 0.35, 1), (0.65, 0.65, 1, 1),
    (0, 0, 0.6, 0.3), (0.4, 0, 1, 0.3), (0, 0.7, 0.6, 1), (0.4, 0.7, 1, 1), (0, 0, 1, 0.35), (0, 0.65, 1, 1),
]  # fmt: skip


@functools.cache
def _region_keep(s: int) -> np.ndarray:
    """(R, S*S) float64: 1 where a pixel of an s px frame lies outside _REGIONS[r], else 0."""
    keep = np.ones((len(_REGIONS), s, s))
    for r, reg in enumerate(_REGIONS):
        c0, r0, c1, r1 = (int(np.ceil(v * s)) for v in reg)
        keep[r, r0:r1, c0:c1] = 0.0
    return keep.reshape(len(_REGIONS), -1)


def _criteria(iters: int) -> tuple[int, int, float]:
    return (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, iters, 1e-3)


def plausible(w: np.ndarray) -> bool:
    """An affine map a copy could have gone through: scale 0.6-1.6 per axis, aspect <= 4/3, little shear and turn."""
    a, b, c, d = float(w[0, 0]), float(w[0, 1]), float(w[1, 0]), float(w[1, 1])
    sx, sy = np.hypot(a, c), np.hypot(b, d)
    shear = abs(a * b + c * d) / max(sx * sy, 1e-6)
    turn = abs(np.degrees(np.arctan2(c, a)))
    return 0.6 <= sx <= 1.6 and 0.6 <= sy <= 1.6 and 0.75 <= sx / sy <= 4 / 3 and shear <= 0.15 and turn <= 12


def _clip_gain(sxy: np.ndarray | float, sxx: np.ndarray | float) -> np.ndarray:
    """The least-squares gain sxy / sxx (sums of centred x * y and x * x), held within GAIN_RANGE (elementwise)."""
    return np.clip(np.divide(sxy, np.maximum(sxx, 1e-6)), *GAIN_RANGE)


def _gain(xc: np.ndarray, yc: np.ndarray) -> float:
    """The one gain within GAIN_RANGE fitting centred y to centred x (least squares)."""
    return float(_clip_gain(float((xc * yc).sum()), float((xc * xc).sum())))


def _trimmed_rms(r2: np.ndarray, trim: float) -> float:
    """sqrt of the mean of (M,) squared residuals without the largest `trim` of them. A sort, not np.partition:
    introselect slows down ~10x on the many equal values of a flat background (both images white)."""
    keep = max(1, int(len(r2) * (1 - trim)))
    return float(np.sqrt(np.sort(r2)[:keep].mean()))


def _same_luma(o: _Overlap) -> bool:
    """Whether the two grey images of an overlap (one of them a colour image's luma) have the same luma: least-squares
    gain within GREY_GAIN of 1 and means within GREY_MEAN levels (a grey copy; not a colour variant)."""
    m, n = o.m, float(o.m.sum())
    mx, my = float(o.xf[0] @ m) / n, float(o.yf[0] @ m) / n
    gain = _gain((o.xf[0] - mx) * m, (o.yf[0] - my) * m)  # held within GAIN_RANGE, which is wider than GREY_GAIN
    return abs(gain - 1) <= GREY_GAIN and abs(my - mx) <= GREY_MEAN


def _ecc_inputs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The single-channel float32 images ECC aligns: luma, or the pair's principal colour component when luma keeps
    less than PRINCIPAL_SHARE of its contrast (a yellow object on a light-blue ground has almost none)."""
    ga, gb = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float32) for x in (a, b))
    if is_grey(a) or is_grey(b):
        return ga, gb
    fa, fb = a.astype(np.float32), b.astype(np.float32)
    v = np.linalg.eigh(np.cov(np.concatenate([fa.reshape(-1, 3), fb.reshape(-1, 3)]).T))[1][:, -1].astype(np.float32)
    pa, pb = fa @ v, fb @ v
    if ga.std() + gb.std() < PRINCIPAL_SHARE * (pa.std() + pb.std()):
        return (pa, pb) if v.sum() >= 0 else (-pa, -pb)
    return ga, gb


class _Pair(NamedTuple):
    """One pair's images as float32 and how they are compared (what every map of the pair shares): in grey (either
    image grey; `mixed`: one grey, the other colour), with the grey one held to the colour one's luma (`luma_kept`: the
    colour one saturated), and whether the JPEG hypothesis applies (`jpeg`: a colour pair, one image with at most
    JPEG_DETAIL of the other's colour detail)."""

    a: np.ndarray
    b: np.ndarray
    grey: bool
    mixed: bool
    luma_kept: bool
    jpeg: bool


def _default_threads() -> int:
    """The cores this process may use (its CPU affinity, as set by a scheduler or taskset), at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cores))


class _Overlap(NamedTuple):
    """b warped onto a (x) and a (y), blurred, (S, S, C) float32; where b's frame covers a (inside, (S, S) bool);
    both flattened to (C, S*S) float64 (xf, yf) and the overlap as (S*S,) float64 weights (m); a's contrast."""

    x: np.ndarray
    y: np.ndarray
    inside: np.ndarray
    xf: np.ndarray
    yf: np.ndarray
    m: np.ndarray
    contrast: float


class EccVerifier:
    """Scores pairs of (S, S, 3) uint8 thumbnails; lower is more alike, inf = no plausible alignment (module doc)."""

    def __init__(self, blur: float = 1.0, gate: float = GATE_CC, floor: float = FLOOR_CC, trim: float = 0.02,
                 penalty: float = PENALTY, screen: float = SCREEN, local_weight: float = LOCAL_WEIGHT,
                 threads: int | None = None):  # fmt: skip
        self.blur, self.gate, self.floor, self.trim, self.penalty, self.screen = blur, gate, floor, trim, penalty, screen
        self.local_weight = local_weight
        self.threads = threads if threads is not None else _default_threads()

    def _ecc(self, a: np.ndarray, b: np.ndarray, w: np.ndarray, iters: int) -> tuple[float, np.ndarray]:
        for smooth in (1, 5):
            try:
                cc, w2 = cv2.findTransformECC(a, b, w.copy(), cv2.MOTION_AFFINE, _criteria(iters), None, smooth)
                return float(cc), w2
            except cv2.error:  # did not converge (flat image, singular Hessian): -1
                pass
        return -1.0, w

    def align(self, a: np.ndarray, b: np.ndarray, box: Box = FULL, overlay: bool = False) -> list[np.ndarray]:
        """Candidate (2, 3) maps a -> b: the ECC optimum when it is plausible, then the starting points themselves
        (ECC can be pulled off by an overlay or fail on a low-contrast image, where the crop box or the identity
        is still the right map). `overlay`: a band of the two matched at the screen (a caption or logo over the
        rest may pull ECC's correlation below the floor): the identity is kept when ECC fails."""
        h = a.shape[0] // 2
        inits = [box_warp(bx, a.shape[0]) for bx in dict.fromkeys([box, FULL])]
        ga, gb = _ecc_inputs(a, b)
        sa, sb = (cv2.GaussianBlur(cv2.resize(g, (h, h), interpolation=cv2.INTER_AREA), (0, 0), 0.7) for g in (ga, gb))
        cc, w = max((self._ecc(sa, sb, box_warp(bx, h), 25) for bx in dict.fromkeys([box, FULL])), key=lambda r: r[0])
        if cc == -1.0:  # ECC could not run from any start (a smooth field): the starts are scored
            return inits
        if cc < self.floor:
            return [inits[-1]] if overlay else []
        if cc < self.gate and not FULL_RES_ITERS:
            return inits
        ba, bb = (cv2.GaussianBlur(g, (0, 0), self.blur) for g in (ga, gb))
        if cc < self.gate:  # the 32 px stage fell short: ECC at 64 px from the starting points (FULL_RES_ITERS)
            cc, w64 = max((self._ecc(ba, bb, m, FULL_RES_ITERS) for m in inits), key=lambda r: r[0])
            return [w64, *inits] if cc >= self.gate and plausible(w64) else inits
        w = w.copy()
        w[:, 2] = 2 * w[:, 2] + 0.5 - 0.5 * w[:, :2].sum(1)  # 32 px -> 64 px coordinates (pixel centres)
        cc, w64 = self._ecc(ba, bb, w, 15)
        if cc >= self.gate:
            return [w64, *inits] if plausible(w64) else inits
        return [w, *inits] if plausible(w) else inits  # the refinement lost the 32 px optimum: that one is scored

    def _pair(self, a: np.ndarray, b: np.ndarray) -> _Pair:
        """(a, b) as float32 and how they are compared (_Pair)."""
        fa, fb = a.astype(np.float32), b.astype(np.float32)
        ga, gb = is_grey(a), is_grey(b)
        if ga or gb:
            return _Pair(fa, fb, True, ga != gb, ga != gb and saturation(b if ga else a) >= GREY_SATURATED, False)
        da, db = colour_detail(fa), colour_detail(fb)
        return _Pair(fa, fb, False, False, False, min(da, db) <= JPEG_DETAIL * max(da, db))

    def _prepare(self, fa: np.ndarray, fb: np.ndarray, grey: bool, w: np.ndarray) -> _Overlap | None:
        """b warped onto a by w, both blurred, and their overlap (_Overlap), or None when the frames overlap by less
        than half of each. `fa`, `fb`, `grey`: from _pair. Each image is blurred by `blur` px of the other's frame
        where it is the finer one (per axis: w's scale): a crop's thumbnail samples the picture more finely than the
        original's, and warped onto it unblurred it keeps detail the original lost (module doc)."""
        s = fa.shape[0]
        sx, sy = float(np.hypot(w[0, 0], w[1, 0])), float(np.hypot(w[0, 1], w[1, 1]))  # b px per a px, per axis
        fb = cv2.GaussianBlur(fb, (0, 0), self.blur * max(1.0, sx), sigmaY=self.blur * max(1.0, sy))
        fa = cv2.GaussianBlur(fa, (0, 0), self.blur * max(1.0, 1 / sx), sigmaY=self.blur * max(1.0, 1 / sy))
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        x = cv2.warpAffine(fb, w, (s, s), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        inside = cv2.warpAffine(np.ones((s, s), np.float32), w, (s, s), flags=flags) > 0.999
        share = float(np.count_nonzero(inside)) / inside.size
        if share < 0.5 or share * abs(np.linalg.det(w[:, :2])) < 0.5:  # half of each frame
            return None
        y = fa
        if grey:
            x, y = (x @ _LUMA)[..., None], (y @ _LUMA)[..., None]
        # sums over the overlap as matrix products over the flattened frame, channels first: far cheaper than boolean
        # indexing and axis-0 means of (N, C) arrays, and this runs for every map of every pair
        c = x.shape[-1]
        xf, yf = (np.ascontiguousarray(v.reshape(-1, c).T, dtype=np.float64) for v in (x, y))
        m = inside.reshape(-1).astype(np.float64)
        n = float(m.sum())
        sy, syy = yf @ m, (yf * yf) @ m
        contrast = float(np.sqrt(max(float(syy.sum() - (sy * sy).sum() / n), 0.0) / (n * c))) + 4.0
        return _Overlap(x, y, inside, xf, yf, m, contrast)

    def _global(self, o: _Overlap) -> tuple[float, Box | None, _Overlap]:
        """The residual over the overlap, the border region it leaves out (None: none; module doc) and the overlap the
        local term should compare (`o`, or with clipped highlights modelled: _clipped)."""
        s, c = o.x.shape[0], o.x.shape[-1]
        # sums of x, y, x^2, xy, y^2 and the pixel count over the overlap (row 0) and over the overlap without each
        # border region (rows 1..R): one matrix product
        weights = np.vstack([o.m[None], _region_keep(s) * o.m[None]])  # (R + 1, N)
        sums = weights @ np.concatenate([o.xf, o.yf, o.xf * o.xf, o.xf * o.yf, o.yf * o.yf]).T  # (R + 1, 5C)
        n = weights.sum(1)  # (R + 1,)
        sx, sy, sxx, sxy, syy = (sums[:, k * c : (k + 1) * c] for k in range(5))
        nn = np.maximum(n, 1.0)[:, None]
        cxx, cxy, cyy = sxx - sx * sx / nn, sxy - sx * sy / nn, syy - sy * sy / nn
        g = _clip_gain(cxy.sum(1), cxx.sum(1))  # (R + 1,) one gain each
        # the whole overlap: per-pixel residuals, the worst `trim` of them dropped
        res = (o.yf - sy[0, :, None] / n[0]) - g[0] * (o.xf - sx[0, :, None] / n[0])  # (C, N)
        best, region = _trimmed_rms((res * res).mean(0)[o.inside.reshape(-1)], self.trim) / o.contrast, None
        # overlay hypotheses: leave out one border region (refitted, no trim); the score is then multiplied by `penalty`,
        # and what is left of a must keep most of its contrast (else the region held the picture, not an overlay)
        gr, nr = g[1:, None], np.maximum(n[1:], 1.0) * c
        fit = np.sqrt(np.maximum((cyy[1:] - 2 * gr * cxy[1:] + gr * gr * cxx[1:]).sum(1), 0.0) / nr)  # (R,)
        kept = np.sqrt(np.maximum(cyy[1:].sum(1) / nr, 0.0)) + 4.0
        score = np.where((n[1:] >= 16) & (kept >= KEEP_CONTRAST * o.contrast), self.penalty * fit / o.contrast, np.inf)
        k = int(np.argmin(score))
        if score[k] < best:
            best, region = float(score[k]), _REGIONS[k]
        clipped, co = self._clipped(o)
        return (clipped, None, co) if clipped < best else (best, region, o)

    def _clipped(self, o: _Overlap) -> tuple[float, _Overlap | None]:
        """The residual over the overlap when one of the two images had its highlights clipped (a brightened copy:
        a pastel background pushed to white), and the overlap with the darker image replaced by its fitted prediction,
        clipped where the brighter one is (for the local term). The pixel-channels of the brighter image within
        CLIP_TOL of its maximum are censored; one gain and one offset (a brightness/contrast change moves the channels
        alike) are fitted on the others, and a censored pixel-channel counts only by how far the fit predicts it below
        the clipping level (module doc). (inf, None) when fewer than CLIP_MIN_CENSORED of the overlap's pixel-channels
        are censored or fewer than CLIP_MIN_SHARE are left."""
        m = o.m > 0
        c = o.xf.shape[0]
        n, best, out = float(o.m.sum()) * c, float("inf"), None
        for bright, dark in ((o.xf, o.yf), (o.yf, o.xf)):
            level = float(bright.max(1, where=m[None], initial=0.0).max()) - CLIP_TOL
            censored = bright >= level  # (C, N)
            free = o.m[None] * ~censored  # (C, N) weights: the overlap's pixel-channels not censored
            k = float(free.sum())
            if not CLIP_MIN_SHARE * n <= k <= (1 - CLIP_MIN_CENSORED) * n:
                continue
            bm, dm = float((bright * free).sum()) / k, float((dark * free).sum()) / k
            g = float(_clip_gain(float(((bright - bm) * (dark - dm) * free).sum()), float(((dark - dm) ** 2 * free).sum())))
            pred = g * dark + (bm - g * dm)
            r = np.where(censored, np.maximum(level - pred, 0.0), bright - pred)
            score = _trimmed_rms((r * r).mean(0)[m], self.trim) / o.contrast
            if score < best:
                img = np.where(censored, np.minimum(pred, level + 0.5 * CLIP_TOL), pred).T.reshape(o.x.shape).astype(np.float32)
                best, out = score, o._replace(**{("y" if dark is o.yf else "x"): img})
        return best, out

    def _local(self, o: _Overlap, region: Box | None, blur: float = LOCAL_BLUR) -> float:
        """The largest RMS residual in a LOCAL_WINDOW square of the overlap without a LOCAL_MARGIN px band at its edge
        and without `region`, over a's contrast, after one gain + an offset fitted on those pixels (in luma, both
        images blurred by `blur` px)."""
        s = o.x.shape[0]
        e = 2 * LOCAL_MARGIN + 1
        keep = cv2.erode(o.inside.astype(np.uint8), np.ones((e, e), np.uint8))  # a border band is left out: the fill
        if region is not None:  # of a rotation, a pad strip and resampling at the frame's edge sit there
            c0, r0, c1, r1 = (int(np.ceil(v * s)) for v in region)
            keep[r0:r1, c0:c1] = 0
        x, y = o.x, o.y
        if x.shape[-1] == 3:  # in luma: JPEG's chroma subsampling bleeds colour around saturated edges
            x, y = x @ _LUMA, y @ _LUMA
        x, y = (cv2.GaussianBlur(v.reshape(s, s), (0, 0), blur) for v in (x, y))  # resampling of thin lines
        kf = keep.astype(np.float32)
        n = float(kf.sum())
        if n == 0:
            return 0.0
        xm, ym = float((x * kf).sum()) / n, float((y * kf).sum()) / n
        xc, yc = (x - xm) * kf, (y - ym) * kf
        g = _gain(xc, yc)
        r2 = (yc - g * xc) ** 2  # (S, S), 0 outside keep
        k = (LOCAL_WINDOW, LOCAL_WINDOW)
        sums = cv2.boxFilter(r2, -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
        counts = cv2.boxFilter(kf, -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
        ok = (keep > 0) & (counts >= 0.5 * LOCAL_WINDOW**2)
        return float(np.sqrt((sums[ok] / counts[ok]).max())) / o.contrast if ok.any() else 0.0

    def residual(self, a: np.ndarray, b: np.ndarray, w: np.ndarray, bound: float = np.inf) -> float:
        """Score of a against b warped by w (a -> b): the residual over their overlap (over a's contrast, module doc), or
        LOCAL_WEIGHT x the local peak when that is larger, for a pair of the JPEG hypothesis (_Pair) the lower of that
        and the same with colour blurred as JPEG does; inf when the frames overlap too little. The local peak is only
        computed when the residual is below `bound` (the score to beat)."""
        return self._best(self._pair(a, b), w, bound)

    def _best(self, pair: _Pair, w: np.ndarray, bound: float) -> float:
        """`residual` of one map from the pair as _pair gives it: the lower of the pair as it is and, for colour
        pairs, with colour blurred (a JPEG copy)."""
        score = self._residual(pair, w, bound)
        if pair.jpeg:
            score = min(score, self._soft_residual(pair, w, min(bound, score)))
        return score

    def _soft_residual(self, pair: _Pair, w: np.ndarray, bound: float) -> float:
        """The score of one map for a colour pair with both images' colour blurred (a JPEG copy: soft_chroma)."""
        return self._residual(pair, w, bound, (soft_chroma(pair.a), soft_chroma(pair.b)))

    def _residual(self, pair: _Pair, w: np.ndarray, bound: float, images: tuple[np.ndarray, np.ndarray] | None = None) -> float:
        """The score of one map for the pair compared as _Pair says, on `images` in place of (pair.a, pair.b) when
        given (the JPEG hypothesis' blurred colour). The local term blurs LOCAL_BLUR_RESAMPLED px under a map that
        rescales or turns, except for a grey image against a colour one (a sketch of a shape against a render of it
        passed the embedded set's audit at 1.5 px; no real-image copy needed it: 5 x 9.5k, one false pair fewer)."""
        fa, fb = images if images is not None else (pair.a, pair.b)
        prep = self._prepare(fa, fb, pair.grey, w)
        if prep is None or (pair.luma_kept and not _same_luma(prep)):
            return float("inf")
        score, region, local = self._global(prep)
        if score < bound and self.local_weight > 0:
            resampled = float(np.abs(w[:, :2] - np.eye(2)).max()) > RESAMPLED and not pair.mixed
            score = max(score, self.local_weight * self._local(local, region, LOCAL_BLUR_RESAMPLED if resampled else LOCAL_BLUR))
        return score

    def score(
        self, a: np.ndarray, b: np.ndarray, ia: np.ndarray, ib: np.ndarray, boxes: Sequence[Box] | None = None,
        pads: bool = True,
    ) -> np.ndarray:  # fmt: skip
        """(P,) float32: score of a[ia[p]] against b[ib[p]]; `boxes[p]`: where b may sit in a (a crop hint), else FULL.

        Pairs whose box_screen score is above SCREEN are rejected (inf) without alignment. The others are aligned on
        `threads` threads (OpenCV's ECC, warps and filters release the GIL); every pair is scored alone, so the
        result does not depend on the number of threads. `pads`: a pair where either image has a pad strip
        (pad.unpadded) is also scored with the strip cut off, and keeps the lower score.
        """
        cv2.setNumThreads(1)  # pairs are tiny: OpenCV's own threads cost more than they save; pairs run in parallel
        from .hashing import BAND_BOXES

        if not len(ia):
            return np.full(0, np.inf, np.float32)
        # the pad hypothesis first: its score is then the bound the pair as it is must beat
        out = self._score_unpadded(a, b, ia, ib, boxes) if pads else np.full(len(ia), np.inf, np.float32)
        screen = box_screen(a, b, ia, ib, boxes)
        band = np.min([box_screen(a, b, ia, ib, [bx] * len(ia), same=True) for bx in BAND_BOXES], axis=0)
        overlay = band <= OVERLAY_SCREEN
        todo = np.flatnonzero((screen <= self.screen) | overlay)

        def run(part: np.ndarray) -> None:
            for p in part.tolist():
                i, j = int(ia[p]), int(ib[p])
                maps = self.align(a[i], b[j], boxes[p] if boxes is not None else FULL, bool(overlay[p]))
                if not maps:
                    continue
                pair, best = self._pair(a[i], b[j]), None
                for w in maps:
                    r = self._residual(pair, w, float(out[p]))
                    if r < out[p]:
                        out[p], best = r, w
                if best is not None and pair.jpeg:  # the JPEG hypothesis, under the map that fits best
                    out[p] = min(out[p], self._soft_residual(pair, best, float(out[p])))

        workers = min(self.threads, len(todo) // 32)
        if workers <= 1:
            run(todo)
        else:  # several chunks per thread: pairs that ECC rejects early are cheaper than the others
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(run, np.array_split(todo, 4 * workers)))
        return out

    def _score_unpadded(self, a: np.ndarray, b: np.ndarray, ia: np.ndarray, ib: np.ndarray,
                        boxes: Sequence[Box] | None) -> np.ndarray:  # fmt: skip
        """(P,) float32: `score` of the pairs where either image has a pad strip, with the strip cut off (pad.unpadded);
        inf for the other pairs. Each image is examined once."""
        cut_a = {i: unpadded(a[i]) for i in np.unique(ia).tolist()}
        cut_b = {j: unpadded(b[j]) for j in np.unique(ib).tolist()}
        pa, pb = [cut_a[i] for i in ia.tolist()], [cut_b[j] for j in ib.tolist()]  # per pair: the cut image or None
        sel = [p for p in range(len(ia)) if pa[p] is not None or pb[p] is not None]
        out = np.full(len(ia), np.inf, np.float32)
        if sel:
            a2 = np.stack([a[ia[p]] if pa[p] is None else pa[p] for p in sel])
            b2 = np.stack([b[ib[p]] if pb[p] is None else pb[p] for p in sel])
            idx = np.arange(len(sel))
            out[sel] = self.score(a2, b2, idx, idx, None if boxes is None else [boxes[p] for p in sel], pads=False)
        return out


__all__ = ["FULL", "EccVerifier", "box_screen", "box_warp", "plausible"]
