"""Synthetic datasets: shapes, dtypes, labels, seeding, and the promised geometry."""

from __future__ import annotations

import numpy as np
import pytest

from xdl.data import synthetic
from xdl.data.synthetic import linearly_separable_3d, spiral, xor


@pytest.mark.parametrize("make", [linearly_separable_3d, spiral, xor])
def test_same_seed_same_data_other_seed_other_data(make):
    X1, y1 = make(seed=7)
    X2, y2 = make(seed=7)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, _ = make(seed=8)
    assert not np.array_equal(X1, X3)


@pytest.mark.parametrize(
    "make, kwargs, shape, labels",
    [
        (linearly_separable_3d, {"n": 51}, (51, 3), {-1, 1}),
        (spiral, {"n_per_class": 40, "classes": 5}, (200, 2), set(range(5))),
        (xor, {"n": 30}, (30, 2), {0, 1}),
    ],
)
def test_shapes_dtypes_labels(make, kwargs, shape, labels):
    X, y = make(**kwargs)
    assert X.dtype == np.float64 and X.shape == shape
    assert y.dtype == np.int64 and y.shape == (shape[0],)
    assert set(y.tolist()) == labels


def test_linearly_separable_keeps_margin_from_generating_plane():
    margin = 0.8
    X, y = linearly_separable_3d(n=300, margin=margin, seed=5)
    w, b = synthetic._random_plane(np.random.default_rng(5))
    assert np.all(y * (X @ w + b) >= margin / 2 - 1e-12)
    assert abs(b) <= 0.5 and np.isclose(np.linalg.norm(w), 1.0)
    # any two points of different classes are at least the margin apart
    gaps = np.linalg.norm(X[y == 1][:, None, :] - X[y == -1][None, :, :], axis=-1)
    assert gaps.min() >= margin - 1e-12
    assert abs(int((y == 1).sum()) - int((y == -1).sum())) <= 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perceptron_converges_on_linearly_separable(seed):
    X, y = linearly_separable_3d(n=200, margin=0.5, seed=seed)
    Xb = np.hstack([X, np.ones((len(X), 1))])
    w = np.zeros(4)
    for _ in range(1000):
        mistakes = 0
        for xi, yi in zip(Xb, y):
            if yi * (xi @ w) <= 0:
                w += yi * xi
                mistakes += 1
        if mistakes == 0:
            break
    assert np.all(y * (Xb @ w) > 0)


def test_spiral_geometry():
    X, y = spiral(n_per_class=50, classes=3, noise=0.0)
    radius = np.linalg.norm(X, axis=1)
    assert radius.max() <= 1.0 + 1e-12
    for k in range(3):
        np.testing.assert_allclose(radius[y == k], np.linspace(0, 1, 50), atol=1e-12)
    # without noise the arms are rotated copies of each other
    turn = 2 * np.pi / 3
    rotate = np.array([[np.cos(turn), np.sin(turn)], [-np.sin(turn), np.cos(turn)]])
    np.testing.assert_allclose(X[y == 0] @ rotate.T, X[y == 1], atol=1e-12)


def test_xor_labels_follow_the_corners():
    X, y = xor(n=400, noise=0.1, seed=3)
    corner = np.sign(X)  # noise 0.1 never moves a point across an axis in practice
    np.testing.assert_array_equal(y, (corner[:, 0] != corner[:, 1]).astype(np.int64))
    assert np.all(np.abs(np.abs(X) - 1) < 0.6)
    assert set(np.bincount(y).tolist()) == {200}


@pytest.mark.parametrize(
    "make, kwargs",
    [
        (linearly_separable_3d, {"n": 1}),
        (linearly_separable_3d, {"margin": -1.0}),
        (spiral, {"classes": 0}),
        (spiral, {"noise": -0.1}),
        (xor, {"n": 0}),
    ],
)
def test_bad_arguments(make, kwargs):
    with pytest.raises(ValueError):
        make(**kwargs)
