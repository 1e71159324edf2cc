"""Small synthetic datasets for the early chapters: host NumPy, seeded, ``(X float64, y int64)``.

- :func:`linearly_separable_3d`: two classes split by a plane with a gap, for the perceptron;
- :func:`spiral`: the K-arm spiral of CS231n, which no linear model separates;
- :func:`xor`: four clusters whose labels are the XOR of the coordinates' signs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["linearly_separable_3d", "spiral", "xor"]


def linearly_separable_3d(
    n: int = 200, margin: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points in 3-D with labels in {-1, +1}, split by a random plane ``w·x + b = 0``.

    ``w`` is a random unit vector and ``|b| <= 0.5``, so the plane passes near the origin.
    Every point lies at distance at least ``margin / 2`` from the plane, on the side of
    its label: ``y * (w·x + b) >= margin / 2``. The classes are thus ``margin`` apart and
    the perceptron converges on them. The classes have ``n - n // 2`` (+1) and ``n // 2``
    (-1) points, in random order.
    """
    if n < 2:
        raise ValueError(f"linearly_separable_3d: n must be at least 2, got {n}")
    if margin < 0:
        raise ValueError(f"linearly_separable_3d: margin must be >= 0, got {margin}")
    rng = np.random.default_rng(seed)
    w, b = _random_plane(rng)
    y = rng.permutation(np.where(np.arange(n) < n - n // 2, 1, -1))
    # a point spread over the plane, then moved to signed distance t from it
    spread = rng.uniform(-3.0, 3.0, size=(n, 3))
    in_plane = spread - np.outer(spread @ w, w)
    t = y * (margin / 2 + rng.uniform(0.0, 2.0, size=n))
    X = in_plane + np.outer(t - b, w)
    return X, y.astype(np.int64)


def spiral(
    n_per_class: int = 100, classes: int = 3, noise: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The K-arm spiral in 2-D (CS231n's construction): ``K * n_per_class`` points, labels 0..K-1.

    Arm ``k`` holds the points ``r (sin θ, cos θ)`` with the radius ``r`` going evenly
    from 0 to 1 while the angle goes ``θ = 2πk/K + 4r + noise * N(0, 1)``.
    """
    if n_per_class < 1 or classes < 1:
        raise ValueError(
            f"spiral: n_per_class and classes must be positive, got {n_per_class}, {classes}"
        )
    if noise < 0:
        raise ValueError(f"spiral: noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    r = np.tile(np.linspace(0.0, 1.0, n_per_class), classes)
    y = np.repeat(np.arange(classes, dtype=np.int64), n_per_class)
    theta = 2 * np.pi * y / classes + 4.0 * r + noise * rng.standard_normal(r.shape)
    X = np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1)
    return X, y


def xor(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 2-D points around the corners (±1, ±1); the label is 1 where the signs differ.

    Each point is a corner plus ``noise * N(0, I)``; its label is the XOR of the corner's
    sign bits, so (1, 1) and (-1, -1) give 0, (1, -1) and (-1, 1) give 1. The corners take
    turns, so each gets ``n // 4`` or ``n // 4 + 1`` points, in random order.
    """
    if n < 1:
        raise ValueError(f"xor: n must be positive, got {n}")
    if noise < 0:
        raise ValueError(f"xor: noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    corners = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    which = rng.permutation(np.arange(n) % 4)
    centres = corners[which]
    X = centres + noise * rng.standard_normal((n, 2))
    y = (centres[:, 0] * centres[:, 1] < 0).astype(np.int64)
    return X, y


def _random_plane(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A random unit normal ``w`` and an offset ``|b| <= 0.5``: the plane ``w·x + b = 0``."""
    w = rng.standard_normal(3)
    return w / np.linalg.norm(w), float(rng.uniform(-0.5, 0.5))
