"""Every dataset recipe end to end on small fixture files (no ../shared, no network)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xdl.cli import main
from xdl.data import write_idx


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """MNIST and Fashion-MNIST look-alikes: 300 training and 60 test images each,
    every class drawn as a bright square at its own place, so they are learnable."""
    root = tmp_path_factory.mktemp("datasets")
    rng = np.random.default_rng(0)
    for name in ("mnist", "fashion-mnist"):
        folder = root / name
        folder.mkdir()
        for prefix, n in (("train", 300), ("t10k", 60)):
            labels = rng.integers(0, 10, n).astype(np.uint8)
            images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
            for i, label in enumerate(labels):
                row, col = divmod(int(label), 5)
                images[i, 4 + 10 * row:10 + 10 * row, 2 + 5 * col:6 + 5 * col] = 250
            write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
            write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.mark.parametrize("recipe", ["softmax-mnist", "mlp-mnist", "mlp-fashion", "lenet-mnist",
                                    "cnn-mnist", "cnn-bn-mnist", "cnn-fashion"])
def test_dataset_recipe_runs_end_to_end(recipe, data_dir, tmp_path):
    out = tmp_path / recipe
    assert main(["train", recipe, "--epochs", "2", "--batch-size", "32", "--data-dir",
                 str(data_dir), "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2
    assert set(metrics["history"]) >= {"loss", "val_loss", "val_accuracy"}
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert (out / "model.npz").exists()


def test_optimizer_comparison_writes_figures_and_table(data_dir, tmp_path):
    out = tmp_path / "compare"
    assert main(["train", "optimizers-compare", "--epochs", "1", "--data-dir", str(data_dir),
                 "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    table = (out / "optimizers.md").read_text()
    for name in ("SGD", "Momentum", "NAG", "Adagrad", "RMSprop", "Adadelta", "Adam"):
        assert f"| {name} |" in table
        for setting in ("suitable", "too small", "too large"):
            assert len(metrics["runs"][setting][name]["batch_loss"]) > 0
    pytest.importorskip("matplotlib")
    assert len(list(out.glob("optimizers-*.png"))) == 3


def test_rnn_curve_learns_the_curve(tmp_path):
    out = tmp_path / "curve"
    assert main(["train", "rnn-curve", "--epochs", "8", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_mse"] < 0.05  # the curve's variance is about 1.5
    assert metrics["history"]["loss"][-1] < metrics["history"]["loss"][0]


def test_lstm_hs300_reports_the_naive_baseline(tmp_path):
    """On a fixture in the book's header-less CSI-300 layout."""
    folder = tmp_path / "hs300"
    folder.mkdir()
    days = np.arange("2010-01-04", "2010-09-01", dtype="datetime64[D]")
    close = 3000 + np.cumsum(np.random.default_rng(0).normal(0, 20, len(days)))
    lines = [f"{d},{i},{c:.2f},1000,2000," for i, (d, c) in enumerate(zip(days, close))]
    (folder / "hs300_2005_2019_book_raw.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["train", "lstm-hs300", "--epochs", "1", "--data-dir", str(tmp_path),
                 "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["naive_rmse"] > 0 and metrics["test_rmse"] > 0
    assert metrics["beats_naive"] == (metrics["test_rmse"] < metrics["naive_rmse"])


def test_bigru_sentiment_runs_on_fixture_files(tmp_path):
    import gzip

    (tmp_path / "sentiment").mkdir()
    (tmp_path / "glove").mkdir()
    rows = ["label,text"] + [f"1,a good fine film {i}" for i in range(40)] + \
        [f"0,a bad dull film {i}" for i in range(40)]
    (tmp_path / "sentiment" / "rotten_tomatoes_snippets.csv").write_text("\n".join(rows))
    vectors = "\n".join(f"{w} " + " ".join(["0.1"] * 50) for w in ("good", "bad", "film"))
    with gzip.open(tmp_path / "glove" / "glove.6B.50d.top100k.txt.gz", "wt") as stream:
        stream.write(vectors + "\n")
    out = tmp_path / "out"
    assert main(["train", "bigru-sentiment", "--epochs", "2", "--data-dir", str(tmp_path),
                 "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["epochs_run"] == 2


def write_shakespeare(root, repeats: int) -> None:
    """A tiny-shakespeare stand-in: one line of verse, ``repeats`` times."""
    (root / "shakespeare").mkdir()
    verse = "ROMEO:\nBut soft, what light through yonder window breaks?\n" * repeats
    (root / "shakespeare" / "tiny-shakespeare.txt").write_text(verse)


def test_charrnn_runs_on_a_fixture_text(tmp_path, monkeypatch):
    import importlib

    monkeypatch.setattr(importlib.import_module("xdl.recipes.sequence"),
                        "CHAR_STEPS_PER_EPOCH", 30)
    write_shakespeare(tmp_path, 40)
    out = tmp_path / "out"
    assert main(["train", "charrnn-shakespeare", "--epochs", "1", "--batch-size", "2",
                 "--data-dir", str(tmp_path), "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val_cross_entropy_nats"] < np.log(27)  # better than uniform guessing
    assert metrics["epochs_run"] == 1
    assert metrics["sample"].startswith("ROMEO:")


def test_point_gans_report_modes_and_moments(tmp_path):
    out = tmp_path / "gan-2d"
    assert main(["train", "gan-2d", "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["modes"] == 8 and 0 <= metrics["modes_covered"] <= 8
    assert sum(metrics["samples_per_mode"]) <= 2500
    out = tmp_path / "gan-1d"
    assert main(["train", "gan-1d", "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["generated_mean"]) and metrics["generated_std"] > 0


def test_autoencoder_and_vae_recipes_write_their_figures(data_dir, tmp_path):
    from xdl.images import read_png

    out = tmp_path / "ae"
    assert main(["train", "ae-mnist", "--epochs", "1", "--data-dir", str(data_dir), "--out",
                 str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 < metrics["test_mse_per_pixel"] < 0.5
    assert read_png(out / "reconstructions.png").shape == (2 + 2 * 30, 2 + 16 * 30)
    out = tmp_path / "vae"
    assert main(["train", "vae-mnist", "--epochs", "2", "--data-dir", str(data_dir), "--out",
                 str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    history = metrics["history"]
    assert history["loss"][-1] < history["loss"][0]
    assert 0 < metrics["test_negative_elbo"] < 784 * np.log(2) + 100
    assert read_png(out / "manifold.png").shape == (15 * 28, 15 * 28)
    for name in ("samples.png", "interpolation.png"):
        assert (out / name).exists()


@pytest.fixture(scope="module")
def classifier(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("classifier")
    assert main(["train", "cnn-mnist", "--epochs", "1", "--data-dir", str(data_dir), "--out",
                 str(out), "--no-progress"]) == 0
    return out / "model.npz"


@pytest.mark.parametrize("recipe", ["gan-mnist", "wgan-mnist", "dcgan-mnist"])
def test_gan_recipes_sample_and_score(recipe, data_dir, classifier, tmp_path):
    from xdl.checkpoint import load_model
    from xdl.images import read_png

    out = tmp_path / recipe
    assert main(["train", recipe, "--epochs", "1", "--batch-size", "32", "--data-dir",
                 str(data_dir), "--out", str(out), "--classifier", str(classifier),
                 "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("generated_score", "real_test_score"):
        score = metrics[key]
        assert 1.0 <= score["inception_score"] <= 10.0 + 1e-9
        assert abs(sum(score["class_histogram"]) - 1) < 1e-9
    assert metrics["generated_score"]["samples"] == 1000
    assert metrics["real_test_score"]["samples"] == 60  # the whole fixture test set
    assert read_png(out / "samples.png").shape == (2 + 8 * 30, 2 + 8 * 30)
    assert load_model(out / "model.npz") is not None


def test_gan_recipe_trains_its_own_classifier_without_one(data_dir, tmp_path):
    out = tmp_path / "gan"
    assert main(["train", "gan-mnist", "--epochs", "1", "--batch-size", "64", "--data-dir",
                 str(data_dir), "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classifier"].endswith("model.npz")
    assert (out / "classifier" / "model.npz").exists()
