"""The cheap pre-screen of candidate pairs before dense alignment (align.EccVerifier.score), and the box geometry it
shares with the alignment (box_warp): each pair scored at 16 px,
batched in torch, so that most look-alikes are rejected without running ECC. Written here, not taken from a library:
it is a batched least-squares residual under a crop box (separable area-resampling matrices, hashing.blur_area), which
no image library offers for thousands of small pairs at once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) as fractions of the frame
FULL: Box = (0.0, 0.0, 1.0, 1.0)
LUMA = np.float32([0.299, 0.587, 0.114])
GAIN_RANGE = (0.7, 1.4)  # the one gain a copy's brightness/contrast change may have (fitted by least squares)


def box_warp(box: Box, size: int) -> np.ndarray:
    """(2, 3) float32 affine map a -> b (pixel centres) when b is `box` of a resized to the full frame."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    return np.float32([[1 / bw, 0, (0.5 - x0 * size) / bw - 0.5], [0, 1 / bh, (0.5 - y0 * size) / bh - 0.5]])


def box_screen(a: np.ndarray, b: np.ndarray, ia: np.ndarray, ib: np.ndarray, boxes: Sequence[Box] | None,
               size: int = 16, blur: float = 0.7, chunk: int = 2048, same: bool = False) -> np.ndarray:  # fmt: skip
    """(P,) float32: a cheap 16 px score of a[ia[p]] against b[ib[p]]: box `boxes[p]` of a (and the whole of a) against
    the whole of b, one gain (0.7-1.4) and an offset per channel (grey pairs in grey), over a's contrast; the lower of
    the two. `same`: box `boxes[p]` of a against the same box of b, alone. What EccVerifier.score screens pairs with
    (torch, batched by box, `chunk` pairs at a time)."""
    if len(ia) > chunk:
        return np.concatenate([box_screen(a, b, ia[s : s + chunk], ib[s : s + chunk],
                                          None if boxes is None else boxes[s : s + chunk], size, blur, chunk, same)
                               for s in range(0, len(ia), chunk)])  # fmt: skip
    import torch

    from .hashing import blur_area

    n = a.shape[1]
    boxes = list(boxes) if boxes is not None else [FULL] * len(ia)
    mats: dict[Box, torch.Tensor] = {}

    def resample(x: np.ndarray, idx: np.ndarray, box: Box) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, 3, size, size), (P,) grey: box of x[idx[p]]; each distinct image once (pairs share images)."""
        if box not in mats:
            mats[box] = torch.tensor(np.stack([blur_area(size, n, box[k] * n, box[k + 2] * n, blur * n / size) for k in (1, 0)]),
                                     dtype=torch.float32)  # fmt: skip
        ry, rx = mats[box]
        u, inv = np.unique(idx, return_inverse=True)
        t = ry @ torch.from_numpy(np.ascontiguousarray(x[u])).permute(0, 3, 1, 2).float() @ rx.T  # (U, 3, size, size)
        inv = torch.from_numpy(inv.reshape(-1))
        return t[inv], ((t.amax(1) - t.amin(1)).mean((1, 2)) < 2)[inv]

    luma = torch.tensor(LUMA)[None, :, None, None]
    out = np.full(len(ia), np.inf, np.float32)
    tb, gb = resample(b, ib, FULL) if not same else (None, None)
    box_ids = np.array([hash(bx) for bx in boxes])
    with torch.no_grad():
        for box in dict.fromkeys(boxes if same else [*boxes, FULL]):
            sel = np.arange(len(ia)) if box == FULL else np.flatnonzero(box_ids == hash(box))
            if not len(sel):
                continue
            ta, ga = resample(a, ia[sel], box)
            tbs, gbs = resample(b, ib[sel], box) if same else (tb[sel], gb[sel])
            grey = (ga | gbs)[:, None, None, None]
            ta = torch.where(grey, (ta * luma).sum(1, keepdim=True).expand_as(ta), ta)
            tbs = torch.where(grey, (tbs * luma).sum(1, keepdim=True).expand_as(tbs), tbs)
            ac, bc = ta - ta.mean((2, 3), keepdim=True), tbs - tbs.mean((2, 3), keepdim=True)
            g = ((ac * bc).sum((1, 2, 3)) / (bc * bc).sum((1, 2, 3)).clamp_min(1e-6)).clamp(*GAIN_RANGE)[:, None, None, None]
            r = ((ac - g * bc) ** 2).mean((1, 2, 3)).sqrt() / (ac.std((1, 2, 3)) + 4.0)
            out[sel] = np.minimum(out[sel], r.numpy())
    return out


__all__ = ["FULL", "GAIN_RANGE", "LUMA", "Box", "box_screen", "box_warp"]
