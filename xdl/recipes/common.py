"""What the classification recipes share: loaders, the fit, the test, the files."""

from __future__ import annotations

import json
import os
import platform
import time

import numpy as np

from xdl import backends, checkpoint, training
from xdl.data import DataLoader
from xdl.plotting import plot_history


def held_out_fraction(n: int, size: int = 5000) -> float:
    """The fraction that holds out ``size`` samples of ``n`` (at most a fifth of them, so
    small fixture datasets still train)."""
    return min(size, n // 5) / n


def split_validation(x, y, fraction: float, seed: int):
    """(train_x, train_y, val_x, val_y): a seeded random ``fraction`` held out."""
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = int(round(fraction * len(y)))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} " \
           f"{platform.python_version()}"


def run_record(name: str, config, settings: dict, seconds: float, epochs_run: int) -> dict:
    """The fields every recipe's metrics.json starts with: what ran, where, with which
    settings and seed, for how long."""
    return {"recipe": name, "backend": str(backends.current()), "machine": machine(),
            "settings": settings, "seed": config.seed, "train_seconds": round(seconds, 2),
            "epochs_run": epochs_run}


def train_classifier(config, name: str, model, arch: str, arch_config: dict, loss_fn,
                     optimizer, data: dict, settings: dict, schedule=None,
                     train_transform=None, extra=None) -> dict:
    """Fit on data["train"], validate on data["val"], test on data["test"]; write
    ``model.npz`` (the last epoch; resumable), ``metrics.json`` and ``curves.png``
    into ``config.out`` and return the metrics.

    ``train_transform`` augments the training batches (a DataLoader ``transform``);
    ``config.resume`` continues from a checkpoint this function wrote; ``extra`` is merged
    into the metrics."""
    out = config.out
    os.makedirs(out, exist_ok=True)
    loader = {
        split: DataLoader(*data[split], batch_size=settings["batch_size"],
                          shuffle=(split == "train"), seed=config.seed,
                          transform=train_transform if split == "train" else None)
        for split in data
    }
    path = os.path.join(out, "model.npz")
    saver = training.ModelCheckpoint(path, arch=arch, config=arch_config)
    began = time.perf_counter()
    history = training.fit(model, loss_fn, optimizer, loader["train"], settings["epochs"],
                           val_loader=loader.get("val"), schedule=schedule,
                           callbacks=[saver], progress=config.progress,
                           resume_from=config.resume)
    seconds = time.perf_counter() - began
    test = training.evaluate(model, loss_fn, loader["test"]) if "test" in loader else {}
    metrics = {
        **run_record(name, config, settings, seconds, len(history["loss"])),
        "test_loss": test.get("loss"), "test_accuracy": test.get("accuracy"),
        "history": dict(history), **(extra or {}),
    }
    return finish(out, name, metrics, history)


def finish(out: str, name: str, metrics: dict, history=None) -> dict:
    """Write metrics.json (and curves.png when there is a history and matplotlib)."""
    os.makedirs(out, exist_ok=True)
    if history:
        curves = plot_history(history, os.path.join(out, "curves.png"), title=name)
        metrics["curves"] = curves
    with open(os.path.join(out, "metrics.json"), "w", encoding="utf-8") as stream:
        json.dump(metrics, stream, indent=2)
    return metrics


def save_model(out: str, model, arch: str, arch_config: dict) -> str:
    return checkpoint.save(os.path.join(out, "model.npz"), model, arch=arch, config=arch_config)
