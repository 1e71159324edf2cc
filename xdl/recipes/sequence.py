"""The recurrent chapters: sequence regression on the book's curve."""

from __future__ import annotations

import os
import time

import numpy as np

from xdl import backends, nn, optim, training
from xdl.data import DataLoader
from xdl.data.timeseries import book_curve, chronological_split, sliding_windows
from xdl.models import SequenceRegressor
from xdl.recipes import recipe
from xdl.recipes.common import finish, machine


def _mse(model, loader) -> float:
    return training.evaluate(model, nn.MSELoss(), loader, metrics=())["loss"]


@recipe("rnn-curve", "《实战深度学习算法》 ch. 7: the recurrent network",
        "3-layer RNN (hidden 30) predicting sin(πx/3)+cos(πx/3)+sin(πx/1.5) + noise one "
        "step ahead from a window of 10", epochs=60, batch_size=32, lr=0.002)
def rnn_curve(config, settings):
    noise = 0.02
    _, y = book_curve(n=2000, step=0.1, noise=noise, seed=config.seed)
    inputs, targets = sliding_windows(y.astype(np.float32), window=10, horizon=1)
    train, val, test = chronological_split(len(targets), train=0.7, val=0.15)
    loaders = {name: DataLoader(inputs[part], targets[part].astype(np.float32),
                                batch_size=settings["batch_size"], shuffle=(name == "train"),
                                seed=config.seed)
               for name, part in (("train", train), ("val", val), ("test", test))}
    arch_config = {"input_size": 1, "hidden_size": 30, "num_layers": 3, "cell": "rnn"}
    model = SequenceRegressor(**arch_config)
    optimizer = optim.Adam(model.parameters(), lr=settings["lr"])
    schedule = optim.StepLR(optimizer, step_size=max(1, settings["epochs"] // 3), gamma=0.3)
    saver = training.ModelCheckpoint(os.path.join(config.out, "model.npz"),
                                     arch="sequence_regressor", config=arch_config)
    began = time.perf_counter()
    history = training.fit(model, nn.MSELoss(), optimizer, loaders["train"], settings["epochs"],
                           val_loader=loaders["val"], metrics=(), schedule=schedule,
                           callbacks=[saver], progress=config.progress)
    metrics = {
        "recipe": "rnn-curve", "backend": str(backends.current()), "machine": machine(),
        "settings": settings, "seed": config.seed,
        "train_seconds": round(time.perf_counter() - began, 2),
        "epochs_run": len(history["loss"]), "test_mse": _mse(model, loaders["test"]),
        "noise_variance": noise**2, "history": dict(history),
        "data": "2,000 points, step 0.1, windows of 10; chronological 70/15/15 split",
    }
    return finish(config.out, "rnn-curve", metrics, history)
