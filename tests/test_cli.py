"""The ``xdl`` command as a user runs it."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest

from xdl import backends, checkpoint
from xdl.cli import main


def test_recipes_lists_every_recipe_with_its_chapter(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in ("digits-mlp", "perceptron-3d", "softmax-spiral", "softmax-mnist",
                 "mlp-mnist", "mlp-fashion"):
        assert name in out
    assert "ch. 1" in out


def test_info_reports_backends(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "ok" in out
    assert "cupy" in out


def test_train_default_recipe_writes_metrics_checkpoint_and_curves(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "3", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipe"] == "digits-mlp"
    assert len(metrics["history"]["loss"]) == 3
    assert metrics["test_accuracy"] > 0.5
    model = checkpoint.load_model(out / "model.npz")
    assert [k for k, _ in model.named_parameters()][0] == "0.weight"
    pytest.importorskip("matplotlib")
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["torch", "array_api_strict"])
def test_train_runs_unchanged_on_other_backends(tmp_path, name):
    if backends.unavailable_reason(name):
        pytest.skip(backends.unavailable_reason(name))
    out = tmp_path / name
    env = {**os.environ, "XDL_BACKEND": name}
    result = subprocess.run([sys.executable, "-m", "xdl.cli", "train", "--epochs", "2",
                             "--out", str(out), "--no-progress"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "metrics.json").read_text())["backend"].startswith(name)


def test_perceptron_recipe_separates_its_data(tmp_path):
    assert main(["train", "perceptron-3d", "--out", str(tmp_path), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["converged"] and metrics["train_accuracy"] == 1.0


def test_unavailable_backend_fails_at_once_with_the_reason(tmp_path, capsys):
    if backends.unavailable_reason("cupy") is None:
        pytest.skip("cupy can run here")
    assert main(["train", "--backend", "cupy", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "cupy" in err and ("xdl[cuda12]" in err or "no CUDA device" in err)
    assert "Traceback" not in err


def test_unknown_recipe_and_missing_data_are_one_line_errors(tmp_path, capsys, monkeypatch):
    assert main(["train", "no-such-recipe"]) == 1
    assert "xdl recipes" in capsys.readouterr().err
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDL_DATA_DIR", raising=False)
    mnist_module = importlib.import_module("xdl.data.mnist")  # the package exports a function
    monkeypatch.setattr(mnist_module, "_fetch", _offline)
    monkeypatch.setattr(mnist_module, "SYSTEM_DIRS", {})
    assert main(["train", "mlp-mnist", "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and "XDL_DATA_DIR" in err


def _offline(url):
    raise OSError("network unreachable")
