"""Constructed data for the bias tests: orthogonal label embeddings, images placed to give known rates."""

from __future__ import annotations

import numpy as np
import pytest

from components.bias.definition import parse_probe


@pytest.fixture
def toy_probe():
    """Labels cat, dog (true classes), harmful (flagged); the variant adds a neutral label."""
    return parse_probe(
        {
            "name": "toy",
            "classes": ["cat", "dog"],
            "flagged": {"bad": ["harmful"]},
            "templates": ["a {c}."],
            "variants": [{"name": "+ neutral", "add": ["neutral"]}],
            "attributes": ["group_kind", "size"],
            "intersections": True,
        }
    )


@pytest.fixture
def toy_images():
    """20 images in D=4 (axes: cat, dog, harmful, neutral) and their groups and true labels.

    Group A: 3 of 10 lie nearest `harmful` (2 of those lean to `neutral` more), 7 on their true class.
    Group B: 1 of 10 on `harmful`, 9 on their true class. Size alternates small/large inside each group.
    """
    e = np.eye(4)
    lean = (0.6 * e[2] + 0.8 * e[3]) / 1.0  # nearest `harmful` among 3 labels, `neutral` among 4
    feats, kind, true = [], [], []
    for g, n_harm, n_lean in (("A", 3, 2), ("B", 1, 0)):
        for i in range(10):
            t = "cat" if i % 2 == 0 else "dog"
            if i < n_lean:
                f = lean
            elif i < n_harm:
                f = e[2]
            else:
                f = e[0] if t == "cat" else e[1]
            feats.append(f)
            kind.append(g)
            true.append(t)
    size = np.array(["small", "large"] * 10, dtype=object)
    return np.array(feats, dtype=np.float32), {"kind": np.array(kind, dtype=object), "size": size}, true
