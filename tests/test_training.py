"""fit / evaluate: learning, callbacks, resuming, and no host round-trip in a step."""

from __future__ import annotations

import numpy as np
import pytest

import xdl
from xdl import backends, data, nn, optim, training
from xdl.models import MLP


def _xor_loaders(backend, batch_size=16):
    x, y = data.xor(n=256, noise=0.1, seed=0)
    vx, vy = data.xor(n=128, noise=0.1, seed=1)
    train = data.DataLoader(x, y, batch_size=batch_size, shuffle=True, seed=0, backend=backend)
    val = data.DataLoader(vx, vy, batch_size=64, backend=backend)
    return train, val


def _setup(lr=0.1, activation="tanh", dropout=None):
    model = MLP([2, 16, 2], activation=activation, dropout=dropout)
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return model, nn.CrossEntropyLoss(), optimizer


def test_fit_learns_xor_on_every_backend(backend):
    train, val = _xor_loaders(backend)
    model, loss_fn, optimizer = _setup()
    history = training.fit(model, loss_fn, optimizer, train, epochs=15, val_loader=val,
                           progress=False)
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}
    assert len(history["loss"]) == 15
    assert history["loss"][-1] < history["loss"][0] / 3
    assert history["val_accuracy"][-1] >= 0.95


def test_a_training_step_does_no_host_round_trip(monkeypatch):
    """On array_api_strict's device1, mixing with the host device raises; converting an
    array to a Python number or bool inside a step raises too (patched here)."""
    if backends.unavailable_reason("array_api_strict"):
        pytest.skip("array_api_strict not installed")
    from array_api_strict._array_object import Array

    with backends.use("array_api_strict", "device1") as device1:
        xdl.manual_seed(0)
        train, val = _xor_loaders(device1)
        model, loss_fn, optimizer = _setup()
        model.append(nn.Dropout(0.1))  # per-step randomness on the device too

        def refuse(self, *args):
            raise AssertionError("host round-trip inside a training step")

        for name in ("__float__", "__bool__", "__int__", "__complex__"):
            monkeypatch.setattr(Array, name, refuse)
        batch = next(iter(train))
        optimizer.zero_grad()
        loss_fn(model(batch[0]), batch[1])
        model.backward(loss_fn.backward())
        optim.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        training.accuracy(model(batch[0]), batch[1])
        history = training.fit(model, loss_fn, optimizer, train, epochs=2, val_loader=val,
                               progress=False, clip_grad_norm=5.0)
        assert len(history["loss"]) == 2


def test_one_step_agrees_across_backends_in_float32(backend, rng):
    x = rng.normal(size=(32, 20)).astype(np.float32)
    y = rng.integers(0, 5, size=32)

    def one_step():
        xdl.manual_seed(5)
        model = MLP([20, 32, 5])
        optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()
        here = backends.current()
        for _ in range(2):
            optimizer.zero_grad()
            loss_fn(model(here.asarray(x, "float32")), here.asarray(y, "int64"))
            model.backward(loss_fn.backward())
            optimizer.step()
        return {k: backends.to_numpy(v) for k, v in model.state_dict().items()}

    result = one_step()
    with backends.use("numpy"):
        reference = one_step()
    for key in reference:
        np.testing.assert_allclose(result[key], reference[key], rtol=1e-5, atol=1e-7,
                                   err_msg=key)


def test_evaluate_caches_nothing_and_restores_the_mode(backend):
    train, val = _xor_loaders(backend)
    model, loss_fn, _ = _setup()
    model.train()
    logs = training.evaluate(model, loss_fn, val)
    assert set(logs) == {"loss", "accuracy"}
    assert model.training
    assert all(m._saved is None for m in model.modules())
    with pytest.raises(RuntimeError, match="without a forward pass"):
        model.backward(backend.asarray(np.ones((4, 2)), "float32"))


def test_schedule_sets_the_learning_rate_per_epoch(backend):
    train, _ = _xor_loaders(backend)
    model, loss_fn, optimizer = _setup()
    schedule = optim.PiecewiseConstantLR(optimizer, {0: 0.1, 2: 0.01})
    history = training.fit(model, loss_fn, optimizer, train, epochs=3, schedule=schedule,
                           progress=False)
    assert history["lr"] == [0.1, 0.1, 0.01]


def test_early_stopping_stops_when_the_metric_stalls():
    train, val = _xor_loaders(backends.current())
    model, loss_fn, optimizer = _setup(lr=0.0)  # nothing improves
    stopper = training.EarlyStopping(monitor="val_loss", patience=2)
    history = training.fit(model, loss_fn, optimizer, train, epochs=20, val_loader=val,
                           callbacks=[stopper], progress=False)
    assert len(history["loss"]) == 3


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_divergence_raises_or_stops():
    train, _ = _xor_loaders(backends.current())
    model, loss_fn, optimizer = _setup(lr=1e30, activation="relu")
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        training.fit(model, loss_fn, optimizer, train, epochs=5, progress=False)
    model, loss_fn, optimizer = _setup(lr=1e30, activation="relu")
    history = training.fit(model, loss_fn, optimizer, train, epochs=5, progress=False,
                           on_divergence="stop")
    assert len(history["loss"]) < 5 and not np.isfinite(history["loss"][-1])


def test_best_checkpoint_is_written_only_on_improvement(tmp_path):
    train, val = _xor_loaders(backends.current())
    model, loss_fn, optimizer = _setup()
    path = tmp_path / "best.npz"
    best = training.ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)
    history = training.fit(model, loss_fn, optimizer, train, epochs=6, val_loader=val,
                           callbacks=[best], progress=False)
    saved = xdl.checkpoint.read(path)
    best_epoch = int(np.argmax(history["val_accuracy"])) + 1
    assert saved.epoch == best_epoch


def test_resumed_training_equals_an_uninterrupted_run(backend, tmp_path):
    """With dropout, so the per-step generator must restart where the run left off."""
    def run(epochs, resume_from=None, path=None):
        xdl.manual_seed(0)
        train, val = _xor_loaders(backend)
        model, loss_fn, optimizer = _setup(dropout=0.3)
        schedule = optim.StepLR(optimizer, step_size=2, gamma=0.5)
        callbacks = [training.ModelCheckpoint(path)] if path else []
        history = training.fit(model, loss_fn, optimizer, train, epochs, val_loader=val,
                               schedule=schedule, callbacks=callbacks, progress=False,
                               resume_from=resume_from)
        return model, history

    straight, straight_history = run(5)
    path = tmp_path / "run.npz"
    run(2, path=path)  # "interrupted" after epoch 2
    resumed, resumed_history = run(5, resume_from=path, path=path)
    for (name, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters()):
        np.testing.assert_allclose(backends.to_numpy(a.data), backends.to_numpy(b.data),
                                   rtol=1e-6, atol=1e-7, err_msg=name)
    assert resumed_history["lr"] == straight_history["lr"]
    np.testing.assert_allclose(resumed_history["val_accuracy"],
                               straight_history["val_accuracy"])


def test_accuracy_for_multiclass_and_single_scores(backend):
    logits = backend.asarray(np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), "float32")
    labels = backend.asarray(np.array([0, 1, 1]), "int64")
    assert float(backends.to_numpy(training.accuracy(logits, labels))) == 2
    scores = backend.asarray(np.array([0.5, -2.0, 1.0]), "float32")
    signs = backend.asarray(np.array([1.0, -1.0, -1.0]), "float32")
    assert float(backends.to_numpy(training.accuracy(scores, signs))) == 2
