"""Near-duplicate verification: is image A a rescaled, cropped, shifted, recoloured or re-encoded copy of B?

Both images are reduced to 32x32 thumbnails. A's frame is matched against every axis-aligned sub-rectangle of B
that keeps at least 75% of each side (crops up to ~44% of the area, a 2-px pad, a rescale of one axis), searched
coarse to fine: a grid of 15 spans per axis (225 rectangles) at 16x16, then +-1 px around the best at 32x32.
Under each rectangle B is resampled (area average, then a Gaussian blur, A blurred alike), and A is predicted
from it with the best brightness fit (one gain in [0.8, 1.25] shared by the channels plus one offset per
channel). The score is the root mean squared error over the frame, or over the frame without one corner box if
that is smaller (a caption or logo stamped on a copy covers a corner), divided by A's contrast, so one threshold
serves flat and busy images. Pixels clipped in A (>= 252 or <= 3) only count when the prediction is on the wrong side
of the clip (brightened copies saturate). A pair where either image is grey is compared in grey.

Hand-written because no well-kept library verifies near-duplicates under crop + photometric change on stored
thumbnails (imagededup and FAISS stop at hash/embedding distances; local features need the full images).
Resampling a rectangle is two small matrix products per axis (torch, batched over pairs), so the cost is linear
in the number of candidate pairs.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image

THUMB = 32  # verification thumbnails are THUMB x THUMB RGB uint8
# coarse-to-fine screen: pairs scoring above COARSE_FACTOR x threshold at 16x16 skip the 32x32 pass
# (they are rejected either way; see BENCHMARKS.md for the copies' coarse scores).
COARSE_FACTOR = 2.0
MAX_CUT = 0.25  # largest share of a side that A's frame may leave out of B's frame
BLUR = 0.6  # Gaussian sigma (pixels of the 32x32 thumbnail) of both images before comparing; 1.0 let textures match
# a caption or logo stamped in a corner: the score is the smaller of the whole frame's and the frame's without the
# worst corner box of this width x height (shares of the side); text of 1/9 the height spans ~60% of a side here
OVERLAY_BOX = (0.625, 0.25)
GREY_SPREAD = 4.0  # an image whose channels differ by at most this (mean abs, 0-255) counts as grey


def thumbnail(img: Image.Image, size: int = THUMB) -> np.ndarray:
    """(size, size, 3) uint8: the image box-averaged down (what the verifier compares)."""
    return np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BOX), np.uint8)


def _resample_matrix(n: int, lo: float, hi: float, sigma: float) -> np.ndarray:
    """(n, n) linear map: area-average the source span [lo, hi) (pixels) into n cells, then Gaussian-blur them."""
    m = np.zeros((n, n))
    edges = np.linspace(lo, hi, n + 1)
    for o in range(n):
        a, b = edges[o], edges[o + 1]
        for i in range(int(np.floor(a)), min(n, int(np.ceil(b)))):
            m[o, i] = max(0.0, min(b, i + 1) - max(a, i))
        m[o] /= m[o].sum()
    if sigma > 0:
        x = np.arange(n)
        g = np.exp(-0.5 * ((x[:, None] - x[None]) / sigma) ** 2)
        m = (g / g.sum(1, keepdims=True)) @ m
    return m


@functools.lru_cache(maxsize=8)
def _span_table(n: int, max_cut: int, sigma: float) -> torch.Tensor:
    """(max_cut + 1, max_cut + 1, n, n): [lo, cut_hi] -> the map of source span [lo, n - cut_hi); every pair, valid or not."""
    t = np.stack([np.stack([_resample_matrix(n, lo, n - hi, sigma) for hi in range(max_cut + 1)]) for lo in range(max_cut + 1)])
    return torch.tensor(t, dtype=torch.float32)


@functools.lru_cache(maxsize=8)
def _corner_masks(n: int, box: tuple[float, float]) -> torch.Tensor:
    """(5, n, n) pixel weights: the whole frame, then the frame without one corner box (w x h shares of the side)."""
    bw, bh = round(box[0] * n), round(box[1] * n)
    m = torch.ones(5, n, n)
    for k, (top, left) in enumerate(((True, True), (True, False), (False, True), (False, False)), start=1):
        rows = slice(0, bh) if top else slice(n - bh, n)
        cols = slice(0, bw) if left else slice(n - bw, n)
        m[k, rows, cols] = 0
    return m


def _grid(max_cut: int) -> tuple[np.ndarray, np.ndarray]:
    """(lo, cut_hi) of every span leaving out at most max_cut pixels in all: the coarse search grid of one axis."""
    pairs = [(lo, c - lo) for c in range(max_cut + 1) for lo in range(c + 1)]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def _grey(x: torch.Tensor) -> torch.Tensor:
    """(P, 3, S, S) -> luminance replicated in 3 channels."""
    y = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    return y[:, None].expand(-1, 3, -1, -1)


class AlignedVerifier:
    """Scores pairs of thumbnails; lower is more alike (see the module docstring).

    `batch` pairs are scored at once (the (P, H, 3, T, T) stack of resampled B is a few MB).
    """

    def __init__(
        self,
        size: int = THUMB,
        max_cut: float = MAX_CUT,
        blur: float = BLUR,
        overlay: tuple[float, float] = OVERLAY_BOX,
        batch: int = 32,
    ):
        if size % 2:
            raise ValueError(f"size={size}: must be even (the coarse pass works at size / 2)")
        self.size, self.max_cut, self.blur, self.overlay, self.batch = size, max_cut, blur, tuple(overlay), batch
        self.coarse_cut = round(size // 2 * max_cut)
        self.fine_cut = 2 * self.coarse_cut + 1

    def _prep(self, x: np.ndarray) -> torch.Tensor:
        if x.ndim != 4 or x.shape[3] != 3 or x.shape[1] != x.shape[2] or x.shape[1] % self.size:
            raise ValueError(f"thumbnails must be (P, k*{self.size}, k*{self.size}, 3), got {x.shape}")
        t = torch.from_numpy(np.array(x, np.float32)).permute(0, 3, 1, 2)  # (P, 3, S, S)
        return torch.nn.functional.avg_pool2d(t, x.shape[1] // self.size) if x.shape[1] != self.size else t

    def _score(self, a: torch.Tensor, b: torch.Tensor, ry: torch.Tensor, rx: torch.Tensor, r0: torch.Tensor,
               robust: bool = False) -> torch.Tensor:  # fmt: skip
        """(P, Hy, Hx) scores of a against b resampled by ry[p, y] (rows) and rx[p, x] (columns).

        robust: leave out the worst corner box (an overlay) and count A's clipped pixels one-sided (the final score);
        else a plain RMS over A's unclipped pixels (the alignment search).
        """
        q = r0 @ a @ r0.T  # (P, 3, T, T): A blurred like the resampled B
        u = torch.einsum("pcrj,pxij->pxcri", b, rx)  # columns: (P, Hx, 3, T_rows, T)
        v = torch.einsum("pyor,pxcri->pyxcoi", ry, u)  # rows too: (P, Hy, Hx, 3, T, T)
        w = ((a > 3) & (a < 252)).float()[:, None, None]  # (P, 1, 1, 3, T, T): unclipped pixels of A fit the brightness
        sw = w.sum((-1, -2)).clamp_min(1.0)  # (P, 1, 1, 3)
        qe = q[:, None, None]
        qm = (w * qe).sum((-1, -2)) / sw  # (P, 1, 1, 3) weighted channel means
        vm = (w * v).sum((-1, -2)) / sw  # (P, Hy, Hx, 3)
        qc, vc = qe - qm[..., None, None], v - vm[..., None, None]
        wvc = w * vc
        gain = ((wvc * qc).sum((-1, -2, -3)) / (wvc * vc).sum((-1, -2, -3)).clamp_min(1e-6)).clamp(0.8, 1.25)
        d = qc - gain[..., None, None, None] * vc  # (P, Hy, Hx, 3, T, T)
        contrast = q.std(dim=(1, 2, 3))[:, None, None] + 4.0  # (P, 1, 1)
        if not robust:
            return ((w * d * d).sum((-1, -2, -3)) / sw.sum(-1)).sqrt() / contrast
        pred = qe - d
        d = torch.where((a >= 252)[:, None, None], (252 - pred).clamp_min(0), d)  # clipped: only the wrong side counts
        d = torch.where((a <= 3)[:, None, None], (pred - 3).clamp_min(0), d)
        m = _corner_masks(a.shape[-1], self.overlay)  # (5, T, T)
        err = torch.einsum("pyxcij,mij->pyxm", d * d, m) / (3 * m.sum((1, 2)))  # (P, Hy, Hx, 5) mean per mask
        return err.min(-1).values.sqrt() / contrast

    def _search(self, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, x: torch.Tensor, cands_y: torch.Tensor,
                cands_x: torch.Tensor, top: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Best spans (P, 2) per axis: each axis searched with the other fixed, then the top-`top` of each jointly.

        y, x: (P, 2) current (lo, cut_hi) per pair; cands_*: (P, H, 2) spans to try on that axis.
        """
        size = a.shape[-1]
        table = _span_table(size, self.fine_cut if size == self.size else self.coarse_cut, self.blur)
        r0 = table[0, 0]

        def mats(spans: torch.Tensor) -> torch.Tensor:  # (P, H, 2) -> (P, H, T, T)
            return table[spans[..., 0], spans[..., 1]]

        sy = self._score(a, b, mats(cands_y), mats(x[:, None]), r0)[:, :, 0]  # (P, Hy)
        sx = self._score(a, b, mats(y[:, None]), mats(cands_x), r0)[:, 0, :]  # (P, Hx)
        ty = torch.gather(cands_y, 1, sy.topk(top, dim=1, largest=False).indices[..., None].expand(-1, -1, 2))  # (P, top, 2)
        tx = torch.gather(cands_x, 1, sx.topk(top, dim=1, largest=False).indices[..., None].expand(-1, -1, 2))
        s = self._score(a, b, mats(ty), mats(tx), r0).flatten(1)  # (P, top * top)
        arg = s.argmin(1)
        p = torch.arange(len(a))
        return ty[p, arg // top], tx[p, arg % top]

    def _final(self, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(P,) robust score at spans y, x (P, 2)."""
        size = a.shape[-1]
        table = _span_table(size, self.fine_cut if size == self.size else self.coarse_cut, self.blur)
        return self._score(a, b, table[y[:, 0], y[:, 1]][:, None], table[x[:, 0], x[:, 1]][:, None], table[0, 0], True)[:, 0, 0]

    def _one_way(self, a: torch.Tensor, b: torch.Tensor, coarse_only: float | None) -> torch.Tensor:
        """(P,) score of a against b: span search at 16x16, then (unless the coarse score is above `coarse_only`) 32x32."""
        p = len(a)
        a16, b16 = torch.nn.functional.avg_pool2d(a, 2), torch.nn.functional.avg_pool2d(b, 2)
        grid = torch.from_numpy(np.stack(_grid(self.coarse_cut), 1)).long()[None].expand(p, -1, -1)  # (P, H, 2)
        ident = torch.zeros(p, 2, dtype=torch.long)
        y, x = self._search(a16, b16, ident, ident, grid, grid, 3)
        out = self._final(a16, b16, y, x)
        todo = torch.ones(p, dtype=torch.bool) if coarse_only is None else out <= coarse_only
        if todo.any():
            k = torch.nonzero(todo)[:, 0]
            d = torch.tensor([[lo, hi] for lo in (-1, 0, 1) for hi in (-1, 0, 1)])  # (9, 2)

            def around(c: torch.Tensor) -> torch.Tensor:  # (K, 2) coarse span -> (K, 9, 2) fine spans
                return (2 * c[:, None] + d[None]).clamp(0, self.fine_cut)

            y2, x2 = 2 * y[k], 2 * x[k]
            y2, x2 = self._search(a[k], b[k], y2, x2, around(y[k]), around(x[k]), 2)
            out[k] = self._final(a[k], b[k], y2, x2)
        return out

    @torch.no_grad()
    def residual(self, a: np.ndarray, b: np.ndarray, both_ways: bool = False, threshold: float | None = None) -> np.ndarray:
        """(P,) float32: a[i] scored as a copy of (a rectangle of) b[i]; `both_ways` also b[i] as a copy of a[i].

        With `threshold`, pairs scoring above COARSE_FACTOR x threshold at 16x16 keep that coarse score (they are
        rejected either way) and skip the 32x32 search. Scores <= threshold are always 32x32 ones.
        """
        if len(a) != len(b):
            raise ValueError(f"{len(a)} vs {len(b)} thumbnails: pairs must align")
        out = np.zeros(len(a), np.float32)
        limit = None if threshold is None else COARSE_FACTOR * threshold
        for s in range(0, len(a), self.batch):
            ta, tb = self._prep(a[s : s + self.batch]), self._prep(b[s : s + self.batch])
            grey = ((ta - ta.mean(1, keepdim=True)).abs().mean((1, 2, 3)) <= GREY_SPREAD) | (
                (tb - tb.mean(1, keepdim=True)).abs().mean((1, 2, 3)) <= GREY_SPREAD
            )
            if grey.any():  # a grey image carries no colour evidence: compare both in grey
                ta, tb = (
                    torch.where(grey[:, None, None, None], _grey(ta), ta),
                    torch.where(grey[:, None, None, None], _grey(tb), tb),
                )
            r = self._one_way(ta, tb, limit)
            if both_ways:
                r = torch.minimum(r, self._one_way(tb, ta, limit))
            out[s : s + self.batch] = r.numpy()
        return out


__all__ = ["THUMB", "AlignedVerifier", "thumbnail"]
