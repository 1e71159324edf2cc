"""The CNN chapters: the book CNN (with and without batch norm), LeNet-5, and the
optimizer comparison."""

from __future__ import annotations

import json
import os
import time

import numpy as np

import xdl
from xdl import data, nn, optim, training
from xdl.models import BookCNN, LeNet5
from xdl.plotting import plot_comparison
from xdl.recipes import recipe
from xdl.recipes.common import (
    finish,
    held_out_fraction,
    run_record,
    split_validation,
    train_classifier,
)


def nchw_images(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) → float32 (N, 1, 28, 28) in [0, 1]."""
    return images[:, None, :, :].astype(np.float32) / 255.0


def image_splits(loader, config, name):
    """train / val (5,000 held out of the training set) / test as NCHW images."""
    root = config.data_root(name)
    train_x, train_y = loader(root=root, split="train")
    test_x, test_y = loader(root=root, split="test")
    tx, ty, vx, vy = split_validation(nchw_images(train_x), train_y,
                                      held_out_fraction(len(train_y)), config.seed)
    return {"train": (tx, ty), "val": (vx, vy), "test": (nchw_images(test_x), test_y)}


def train_cnn(config, settings, name, model, arch, arch_config, dataset, decay_epoch):
    """SGD with Nesterov momentum 0.9, weight decay 5e-4, rate ÷10 at ``decay_epoch``."""
    optimizer = optim.SGD(model.parameters(), lr=settings["lr"], momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    schedule = optim.PiecewiseConstantLR(optimizer, {0: settings["lr"],
                                                     decay_epoch: settings["lr"] / 10})
    return train_classifier(config, name, model, arch, arch_config, nn.CrossEntropyLoss(),
                            optimizer, dataset, settings, schedule)


@recipe("cnn-mnist", "《实战深度学习算法》 ch. 4: the convolutional network",
        "conv5x5x32-pool-conv5x5x64-pool-FC512-10 on MNIST; SGD + Nesterov momentum",
        resumable=True, epochs=10, batch_size=128, lr=0.05)
def cnn_mnist(config, settings):
    arch_config = {"batch_norm": False}
    return train_cnn(config, settings, "cnn-mnist", BookCNN(**arch_config), "book_cnn",
                      arch_config, image_splits(data.mnist, config, "mnist"), 7)


@recipe("cnn-bn-mnist", "《解剖深度学习原理》 ch. 6: batch normalisation",
        "the book CNN with BatchNorm2d after each convolution, on MNIST",
        resumable=True, epochs=10, batch_size=128, lr=0.1)
def cnn_bn_mnist(config, settings):
    arch_config = {"batch_norm": True}
    return train_cnn(config, settings, "cnn-bn-mnist", BookCNN(**arch_config), "book_cnn",
                      arch_config, image_splits(data.mnist, config, "mnist"), 7)


@recipe("lenet-mnist", "《解剖深度学习原理》 ch. 5: LeNet-5",
        "LeNet-5 (ReLU, max pooling) on MNIST; SGD + Nesterov momentum",
        resumable=True, epochs=15, batch_size=64, lr=0.05)
def lenet_mnist(config, settings):
    arch_config = {"activation": "relu", "pool": "max"}
    return train_cnn(config, settings, "lenet-mnist", LeNet5(**arch_config), "lenet5",
                      arch_config, image_splits(data.mnist, config, "mnist"), 11)


@recipe("cnn-fashion", "《解剖深度学习原理》 ch. 5: the CNN on Fashion-MNIST",
        "the book CNN with batch norm on Fashion-MNIST", resumable=True, epochs=15,
        batch_size=128, lr=0.05)
def cnn_fashion(config, settings):
    arch_config = {"batch_norm": True}
    return train_cnn(config, settings, "cnn-fashion", BookCNN(**arch_config), "book_cnn",
                      arch_config, image_splits(data.fashion_mnist, config, "fashion-mnist"),
                      11)


# -- the optimizer comparison ----------------------------------------------------------------

#: Learning rates per optimizer: a suitable one, one too small and one too large.
COMPARED = {
    "SGD": (lambda p, lr: optim.SGD(p, lr=lr), (0.1, 0.001, 3.0)),
    "Momentum": (lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9), (0.02, 0.0002, 1.0)),
    "NAG": (lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9, nesterov=True),
            (0.02, 0.0002, 1.0)),
    "Adagrad": (lambda p, lr: optim.Adagrad(p, lr=lr), (0.02, 0.0002, 1.0)),
    "RMSprop": (lambda p, lr: optim.RMSprop(p, lr=lr), (0.001, 0.00001, 0.1)),
    "Adadelta": (lambda p, lr: optim.Adadelta(p, lr=lr), (1.0, 0.01, 100.0)),
    "Adam": (lambda p, lr: optim.Adam(p, lr=lr), (0.001, 0.00001, 0.1)),
}
SETTINGS = ("suitable", "too small", "too large")


@recipe("optimizers-compare", "《解剖深度学习原理》 ch. 4: optimisation algorithms",
        "LeNet-5 trained with SGD, Momentum, NAG, Adagrad, RMSprop, Adadelta and Adam at a "
        "suitable, a too-small and a too-large learning rate; curves and a table",
        epochs=3, batch_size=64, lr=None)
def optimizers_compare(config, settings):
    root = config.data_root("mnist")
    images, labels = data.mnist(root=root, split="train")
    images, labels = images[:12000], labels[:12000]
    tx, ty, vx, vy = split_validation(nchw_images(images), labels,
                                      held_out_fraction(len(labels), 2000), config.seed)
    train = data.DataLoader(tx, ty, batch_size=settings["batch_size"], shuffle=True,
                            seed=config.seed)
    val = data.DataLoader(vx, vy, batch_size=500)
    began = time.perf_counter()
    runs: dict[str, dict[str, dict]] = {setting: {} for setting in SETTINGS}
    for optimizer_name, (build, rates) in COMPARED.items():
        for setting, lr in zip(SETTINGS, rates):
            xdl.manual_seed(config.seed)
            model = LeNet5()
            recorder = training.LossRecorder()
            history = training.fit(model, nn.CrossEntropyLoss(), build(model.parameters(), lr),
                                   train, settings["epochs"], val_loader=val,
                                   callbacks=[recorder], progress=config.progress,
                                   on_divergence="stop")
            runs[setting][optimizer_name] = {**dict(history), "lr": lr,
                                             "batch_loss": recorder.losses}
    os.makedirs(config.out, exist_ok=True)
    figures = [plot_comparison(runs[setting], os.path.join(
        config.out, f"optimizers-{setting.replace(' ', '-')}.png"),
        title=f"{setting} learning rate") for setting in SETTINGS]
    table = _comparison_table(runs)
    with open(os.path.join(config.out, "optimizers.md"), "w", encoding="utf-8") as stream:
        stream.write(table + "\n")
    metrics = {**run_record("optimizers-compare", config, settings,
                            time.perf_counter() - began, settings["epochs"]),
               "data": "MNIST, first 12,000 training images: 10,000 train, 2,000 validation",
               "runs": runs, "table": table, "figures": figures}
    with open(os.path.join(config.out, "runs.json"), "w", encoding="utf-8") as stream:
        json.dump(runs, stream, indent=1)
    return finish(config.out, "optimizers-compare", metrics)


def _comparison_table(runs) -> str:
    lines = ["| optimizer | " + " | ".join(f"{s}: lr → val. accuracy (final loss)"
                                             for s in SETTINGS) + " |",
             "|---|" + "---|" * len(SETTINGS)]
    for name in COMPARED:
        cells = []
        for setting in SETTINGS:
            run = runs[setting][name]
            loss = run["loss"][-1]
            if not np.isfinite(loss):
                cells.append(f"{run['lr']:g} → diverged")
                continue
            cells.append(f"{run['lr']:g} → {100 * run['val_accuracy'][-1]:.1f}% ({loss:.3f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
