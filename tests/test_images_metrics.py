"""PNG writing and reading, image grids, and the classifier (inception) score."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import on

from xdl import nn
from xdl.images import image_grid, read_png, save_image_grid, write_png
from xdl.metrics import classifier_score


def test_png_round_trip_grey_and_rgb(tmp_path, rng):
    grey = rng.integers(0, 256, (7, 5)).astype(np.uint8)
    rgb = rng.integers(0, 256, (4, 6, 3)).astype(np.uint8)
    np.testing.assert_array_equal(read_png(write_png(tmp_path / "g.png", grey)), grey)
    np.testing.assert_array_equal(read_png(write_png(tmp_path / "c.png", rgb)), rgb)
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_png(tmp_path / "x.png", np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        write_png(tmp_path / "x.png", np.zeros((2, 2, 2), np.uint8))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="signature"):
        read_png(tmp_path / "bad.png")


def test_png_is_readable_by_matplotlib(tmp_path, rng):
    image = pytest.importorskip("matplotlib.image")
    grey = rng.integers(0, 256, (9, 11)).astype(np.uint8)
    loaded = image.imread(write_png(tmp_path / "g.png", grey))
    np.testing.assert_allclose(loaded * 255, grey, atol=1e-3)


def test_image_grid_layout_and_scaling(backend):
    images = np.zeros((5, 1, 2, 3))
    images[3] = 1.0
    grid = image_grid(on(backend, images), rows=2, padding=1)
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 1) and grid.dtype == np.uint8
    assert np.all(grid[4:6, 1:4] == 255)  # image 3: second row, first column
    assert grid.sum() == 255 * 6
    signed = image_grid(on(backend, -np.ones((1, 2, 2))), value_range=(-1, 1), padding=0)
    assert np.all(signed == 0)


def test_save_image_grid_writes_a_png(tmp_path, rng):
    path = save_image_grid(tmp_path / "grid.png", rng.uniform(size=(4, 3, 5, 5)))
    assert read_png(path).shape == (2 + 2 * 7, 2 + 2 * 7, 3)


class FixedLogits(nn.Module):
    """A "classifier" whose logits are its input."""

    def forward(self, x):
        return x


def test_classifier_score_extremes(backend):
    confident = on(backend, 50.0 * np.eye(10)[np.arange(100) % 10], "float32")
    score = classifier_score(FixedLogits(), confident, batch_size=30)
    assert score["inception_score"] == pytest.approx(10.0, rel=1e-4)
    assert score["mean_confidence"] == pytest.approx(1.0, abs=1e-4)
    assert score["class_entropy"] == pytest.approx(np.log(10), rel=1e-6)
    collapsed = on(backend, 50.0 * np.eye(10)[np.zeros(40, int)], "float32")
    score = classifier_score(FixedLogits(), collapsed)
    assert score["inception_score"] == pytest.approx(1.0, abs=1e-4)
    assert score["class_entropy"] == 0.0
    assert score["class_histogram"][0] == 1.0


def test_classifier_score_matches_its_formula(backend, rng):
    logits = rng.normal(size=(50, 4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    marginal = probs.mean(axis=0)
    expected = np.exp(np.mean(np.sum(probs * np.log(probs / marginal), axis=1)))
    score = classifier_score(FixedLogits(), on(backend, logits))
    assert score["inception_score"] == pytest.approx(expected, rel=1e-10)
