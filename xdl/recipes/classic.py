"""The first chapters: perceptron, softmax regression, MLPs on digits, MNIST, Fashion-MNIST."""

from __future__ import annotations

import os
import time

import numpy as np

from xdl import backends, data, nn, optim
from xdl.models import MLP, Perceptron, SoftmaxRegression
from xdl.recipes import recipe
from xdl.recipes.common import (
    finish,
    held_out_fraction,
    run_record,
    save_model,
    split_validation,
    train_classifier,
)


def _flat_images(images: np.ndarray, scale: float) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / scale


def _mnist_like(loader, config, name):
    """train / val (5,000 held out of the training set) / test, flattened to [0, 1]."""
    root = config.data_root(name)
    train_x, train_y = loader(root=root, split="train")
    test_x, test_y = loader(root=root, split="test")
    tx, ty, vx, vy = split_validation(_flat_images(train_x, 255.0), train_y,
                                      held_out_fraction(len(train_y)), config.seed)
    return {"train": (tx, ty), "val": (vx, vy), "test": (_flat_images(test_x, 255.0), test_y)}


def _classifier(config, settings, name, model, arch, arch_config, dataset, momentum=0.9,
                schedule_table=None):
    optimizer = optim.SGD(model.parameters(), lr=settings["lr"], momentum=momentum)
    schedule = (optim.PiecewiseConstantLR(optimizer, schedule_table)
                if schedule_table else None)
    return train_classifier(config, name, model, arch, arch_config, nn.CrossEntropyLoss(),
                            optimizer, dataset, settings, schedule)


@recipe("digits-mlp", "《解剖深度学习原理》 ch. 3: the multi-layer perceptron",
        "MLP 64-128-64-10 (ReLU) on the embedded UCI digits; SGD + momentum",
        resumable=True, epochs=40, batch_size=32, lr=0.05)
def digits_mlp(config, settings):
    train_x, train_y = data.digits(split="train", seed=config.seed)
    test_x, test_y = data.digits(split="test", seed=config.seed)
    arch_config = {"sizes": [64, 128, 64, 10]}
    dataset = {"train": (_flat_images(train_x, 16.0), train_y),
               "test": (_flat_images(test_x, 16.0), test_y)}
    return _classifier(config, settings, "digits-mlp", MLP(**arch_config), "mlp", arch_config,
                       dataset)


@recipe("softmax-mnist", "《实战深度学习算法》 ch. 2: softmax regression",
        "softmax regression 784-10 on MNIST; SGD + momentum",
        resumable=True, epochs=15, batch_size=128, lr=0.05)
def softmax_mnist(config, settings):
    arch_config = {"in_features": 784, "num_classes": 10}
    return _classifier(config, settings, "softmax-mnist", SoftmaxRegression(**arch_config),
                       "softmax_regression", arch_config,
                       _mnist_like(data.mnist, config, "mnist"),
                       schedule_table={0: settings["lr"], 10: settings["lr"] / 10})


@recipe("mlp-mnist", "《实战深度学习算法》 ch. 3: the deep MLP",
        "MLP 784-512-512-10 (ReLU, dropout 0.2) on MNIST; SGD + momentum, stepped LR",
        resumable=True, epochs=20, batch_size=128, lr=0.05)
def mlp_mnist(config, settings):
    arch_config = {"sizes": [784, 512, 512, 10], "dropout": 0.2}
    return _classifier(config, settings, "mlp-mnist", MLP(**arch_config), "mlp", arch_config,
                       _mnist_like(data.mnist, config, "mnist"),
                       schedule_table={0: settings["lr"], 15: settings["lr"] / 10})


@recipe("mlp-fashion", "《解剖深度学习原理》 ch. 3: the MLP on Fashion-MNIST",
        "MLP 784-512-256-10 (ReLU, dropout 0.2) on Fashion-MNIST; SGD + momentum",
        resumable=True, epochs=25, batch_size=128, lr=0.05)
def mlp_fashion(config, settings):
    arch_config = {"sizes": [784, 512, 256, 10], "dropout": 0.2}
    return _classifier(config, settings, "mlp-fashion", MLP(**arch_config), "mlp",
                       arch_config, _mnist_like(data.fashion_mnist, config, "fashion-mnist"),
                       schedule_table={0: settings["lr"], 18: settings["lr"] / 10})


@recipe("softmax-spiral", "《解剖深度学习原理》 ch. 2: softmax regression on the spiral",
        "softmax regression vs. an MLP 2-100-3 on a 3-arm spiral: a linear model cannot "
        "separate it", epochs=200, batch_size=32, lr=0.1)
def softmax_spiral(config, settings):
    x, y = data.spiral(n_per_class=200, classes=3, noise=0.2, seed=config.seed)
    tx, ty, vx, vy = split_validation(x.astype(np.float32), y, 0.25, config.seed)
    dataset = {"train": (tx, ty), "test": (vx, vy)}
    metrics = _classifier(config, settings, "softmax-spiral", SoftmaxRegression(2, 3),
                          "softmax_regression", {"in_features": 2, "num_classes": 3}, dataset)
    mlp_config = {"sizes": [2, 100, 3]}
    mlp_run = type(config)(**{**config.__dict__, "out": os.path.join(config.out, "mlp")})
    mlp_metrics = _classifier(mlp_run, settings, "softmax-spiral (MLP)", MLP(**mlp_config),
                              "mlp", mlp_config, dataset)
    metrics["mlp_test_accuracy"] = mlp_metrics["test_accuracy"]
    return finish(config.out, "softmax-spiral", metrics, metrics["history"])


@recipe("perceptron-3d", "《实战深度学习算法》 ch. 1: the perceptron",
        "Rosenblatt's learning rule on linearly separable points in 3-D, until an epoch "
        "makes no mistake", epochs=100, batch_size=1, lr=1.0)
def perceptron_3d(config, settings):
    backend = backends.current()
    x, y = data.linearly_separable_3d(n=200, margin=0.5, seed=config.seed)
    xs = backend.asarray(x, "float32")
    ys = backend.asarray(y, "float32")
    model = Perceptron(3)
    began = time.perf_counter()
    mistakes = []
    for _ in range(settings["epochs"]):
        mistakes.append(int(float(backends.to_numpy(model.learn(xs, ys, settings["lr"])))))
        if mistakes[-1] == 0:
            break
    accuracy = float(backends.to_numpy(
        backend.xp.mean(backend.xp.astype(model.predict(xs) == ys, xs.dtype))))
    save_model(config.out, model, "perceptron", {"in_features": 3})
    metrics = {
        **run_record("perceptron-3d", config, settings, time.perf_counter() - began,
                     len(mistakes)),
        "mistakes_per_epoch": mistakes,
        "train_accuracy": accuracy, "converged": mistakes[-1] == 0,
    }
    return finish(config.out, "perceptron-3d", metrics)
