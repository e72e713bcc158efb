"""Pad strips: find the solid strip a copy shifted by padding carries along one side, and cut it off (align.py scores
such a pair again without it). Written here: no image library detects a one-sided letterbox strip with a resampled,
fractional inner edge on 64 px thumbnails."""

from __future__ import annotations

import cv2
import numpy as np

from .screen import Box, box_warp

# A pad (a copy shifted by padding one side with a solid colour, then resized back): a strip along one side of a 64 px
# thumbnail, at most PAD_MAX px wide, its outer line within PAD_TOL levels of one colour, a line within PAD_MAX + 2 of
# the edge differing from that colour by >= PAD_STEP on average, and the colour covering at most PAD_SHARE of the rest
# of the image (else it is the background: a drawing cut tight to its frame). A strip of the background's own colour is
# invisible and needs none of this. Real-image benchmark, 10 plantings at 9.5k (2026-12-02): pad copies found 284 ->
# 295 of 300, no other family changed, one false pair more, no clean eval image more; taken for padded: 45% of the pad
# copies (the rest are padded with the background's colour), none of a planting's 630 eval images, 10 of 3,000 of its
# training images.
PAD_MAX, PAD_TOL, PAD_STEP, PAD_SHARE = 6, 6.0, 24.0, 0.1


def unpadded(x: np.ndarray) -> np.ndarray | None:
    """x without a pad strip along one side (PAD_MAX, PAD_TOL, PAD_STEP, PAD_SHARE), its inner box resized to the frame;
    None when no side has one (or more than one side does: not a pad). The strip's width is fractional, the lines
    summed by how much of the strip's colour each holds: the inner edge of a resized-back copy's strip is resampled."""
    s = x.shape[0]
    f = x.astype(np.float32)
    found: list[Box] = []
    n = PAD_MAX + 3
    sides = (f[:, :n].transpose(1, 0, 2), f[:, ::-1][:, :n].transpose(1, 0, 2), f[:n], f[::-1][:n])  # (L, S, 3) each
    for side, lines in enumerate(sides):  # left, right, top, bottom: line k is the k-th from that edge
        colour = lines[0].mean(0)
        if np.abs(lines[0] - colour).max() > PAD_TOL:  # the outer line is not one colour: most images stop here
            continue
        off = np.abs(lines - colour).max(-1).mean(1)  # (L,): each line's mean distance from the strip's colour
        if off[1:].max() < PAD_STEP:
            continue
        inner = int(np.argmax(off >= PAD_STEP))  # the first line that is mostly not strip
        rest = np.abs(f - colour).max(-1) <= 2 * PAD_TOL  # the strip's colour elsewhere: a background, not a pad
        content = float(off[inner : inner + 3].mean())
        w = float(np.clip(1 - off[: inner + 1] / content, 0, 1).sum())
        if not 0.5 <= w <= PAD_MAX or rest.mean() - w / s > PAD_SHARE:
            continue
        w /= s
        found.append([(w, 0.0, 1.0, 1.0), (0.0, 0.0, 1.0 - w, 1.0), (0.0, w, 1.0, 1.0), (0.0, 0.0, 1.0, 1.0 - w)][side])
    if len(found) != 1:
        return None
    return cv2.warpAffine(x, box_warp(found[0], s), (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


__all__ = ["PAD_MAX", "PAD_SHARE", "PAD_STEP", "PAD_TOL", "unpadded"]
