"""The training loop: ``fit`` and ``evaluate``, metrics, callbacks and resuming.

One training step is

    optimizer.zero_grad(); y = model(x); loss = loss_fn(y, t)
    model.backward_params(loss_fn.backward()); optimizer.step()

Losses and metric counts stay device arrays during an epoch (no host round-trip in
a step); they are read on the host only for the progress bar every ``log_every``
steps and at the end of the epoch.
"""

from __future__ import annotations

import contextlib
import math
import time

from tqdm.auto import tqdm

from xdl import backends
from xdl.nn.module import no_grad
from xdl.optim.clip import clip_grad_norm_
from xdl.thread_tuning import ThreadTuner

# -- metrics ---------------------------------------------------------------------------


def accuracy(output, target):
    """Number of correct predictions (a 0-d device array).

    Multi-class outputs (..., C) with C > 1 predict argmax; single scores predict
    the positive class when > 0 and count as correct when the target is > 0 too
    (labels ±1 or 0/1).
    """
    xp = backends.namespace(output)
    if output.ndim >= 2 and output.shape[-1] > 1:
        predicted = xp.argmax(output, axis=-1)
        return xp.sum(xp.astype(predicted == xp.astype(target, predicted.dtype), output.dtype))
    scores = xp.reshape(output, tuple(target.shape))
    return xp.sum(xp.astype((scores > 0) == (target > 0), output.dtype))


METRICS = {"accuracy": accuracy}


def _metric(name):
    if callable(name):
        return name.__name__, name
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}: choose from {', '.join(METRICS)} "
                         "or pass a function (output, target) -> count")
    return name, METRICS[name]


def _host(value) -> float:
    return float(backends.to_numpy(value))


# -- callbacks -------------------------------------------------------------------------


class Callback:
    """Hooks called by :func:`fit`; ``state`` is the :class:`TrainingState`."""

    def on_train_begin(self, state):
        pass

    def on_batch_end(self, state, loss):
        """After each step; ``loss`` is the batch's loss as a 0-d device array."""

    def on_epoch_end(self, state, logs: dict):
        pass

    def on_train_end(self, state):
        pass


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto"):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode = _mode(monitor, mode)
        self.best, self.wait = None, 0

    def on_epoch_end(self, state, logs):
        value = _monitored(logs, self.monitor)
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                state.stop = True


class LossRecorder(Callback):
    """Keeps every batch's training loss (``losses``, host floats), for per-iteration
    curves. The losses stay on the device during an epoch and are read once at its end.
    """

    def __init__(self):
        self.losses: list[float] = []
        self._pending = []

    def on_batch_end(self, state, loss):
        self._pending.append(loss)

    def on_epoch_end(self, state, logs):
        if self._pending:
            xp = backends.namespace(self._pending[0])
            self.losses.extend(float(v) for v in backends.to_numpy(xp.stack(self._pending)))
            self._pending = []


class ModelCheckpoint(Callback):
    """Save model, optimizer, schedule, epoch and history after each epoch.

    ``save_best_only`` writes only when ``monitor`` improves (the best checkpoint);
    otherwise every epoch overwrites ``path`` (the one to resume from).
    """

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", arch: str | None = None, config: dict | None = None):
        self.path, self.monitor, self.save_best_only = path, monitor, save_best_only
        self.mode = _mode(monitor, mode)
        self.arch, self.config = arch, config
        self.best = None

    def on_epoch_end(self, state, logs):
        if self.save_best_only:
            value = _monitored(logs, self.monitor)
            if not _improved(value, self.best, self.mode, 0.0):
                return
            self.best = value
        state.save(self.path, arch=self.arch, config=self.config)


def _mode(monitor, mode):
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


def _monitored(logs, monitor):
    if monitor not in logs:
        raise KeyError(f"monitored value {monitor!r} is not logged; logged: {sorted(logs)}")
    return logs[monitor]


def _improved(value, best, mode, min_delta):
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


# -- the loop --------------------------------------------------------------------------


class History(dict):
    """Per-epoch logs: ``history["loss"][e]``, ``history["val_accuracy"][e]``, ...

    ``history.history`` is the dict itself (Keras's name).
    """

    @property
    def history(self):
        return self

    def append(self, logs: dict):
        for key, value in logs.items():
            self.setdefault(key, []).append(value)


class TrainingState:
    """What a training run holds: passed to callbacks, saved in checkpoints."""

    def __init__(self, model, optimizer, schedule, history, epoch=0):
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.history, self.epoch, self.stop = history, epoch, False

    def save(self, path, arch=None, config=None):
        from xdl import checkpoint

        checkpoint.save(path, self.model, self.optimizer, schedule=self.schedule,
                        epoch=self.epoch, arch=arch, config=config, history=dict(self.history))


def _as_tuple(grads):
    """A loss over several outputs (a VAE's) returns one gradient per output."""
    return grads if isinstance(grads, tuple) else (grads,)


def train_epoch(model, loss_fn, optimizer, loader, metrics=("accuracy",),
                clip_grad_norm=None, bar=None, log_every: int = 50, callbacks=(),
                state=None, tuner=None) -> dict:
    """One pass over ``loader`` in training mode; returns the epoch's mean loss and metrics.

    ``tuner`` (a :class:`xdl.thread_tuning.ThreadTuner`) times each step and sets the
    thread count of the next.
    """
    named = [_metric(m) for m in metrics]
    model.train()
    loss_sum, counts, seen = 0.0, [0.0] * len(named), 0
    for step, batch in enumerate(loader, 1):
        x, target = batch[0], batch[-1]
        with tuner.step() if tuner else contextlib.nullcontext():
            optimizer.zero_grad()
            output = model(x)
            loss = loss_fn(output, target)
            model.backward_params(*_as_tuple(loss_fn.backward()))
            if clip_grad_norm is not None:
                clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
        n = x.shape[0]
        seen += n
        loss_sum = loss_sum + loss * n
        counts = [c + fn(output, target) for c, (_, fn) in zip(counts, named)]
        for callback in callbacks:
            callback.on_batch_end(state, loss)
        if bar is not None:
            bar.update(1)
            if step % log_every == 0:
                bar.set_postfix(loss=f"{_host(loss_sum) / seen:.4f}", refresh=False)
    if seen == 0:
        raise ValueError("train_epoch: the loader yielded no batch")
    logs = {"loss": _host(loss_sum) / seen}
    logs.update({name: _host(c) / seen for c, (name, _) in zip(counts, named)})
    return logs


def evaluate(model, loss_fn, loader, metrics=("accuracy",)) -> dict:
    """Mean loss and metrics over ``loader`` in eval mode, caching nothing."""
    named = [_metric(m) for m in metrics]
    was_training = model.training
    model.eval()
    loss_sum, counts, seen = 0.0, [0.0] * len(named), 0
    try:
        with no_grad():
            for batch in loader:
                x, target = batch[0], batch[-1]
                output = model(x)
                n = x.shape[0]
                seen += n
                loss_sum = loss_sum + loss_fn(output, target) * n
                counts = [c + fn(output, target) for c, (_, fn) in zip(counts, named)]
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate: the loader yielded no batch")
    logs = {"loss": _host(loss_sum) / seen}
    logs.update({name: _host(c) / seen for c, (name, _) in zip(counts, named)})
    return logs


def _thread_tuner(model):
    """A ThreadTuner for the backend of ``model``'s parameters (None if it has none)."""
    first = next(iter(model.parameters()), None)
    return None if first is None else ThreadTuner.for_backend(backends.backend_of(first.data))


def fit(model, loss_fn, optimizer, train_loader, epochs: int, val_loader=None,
        metrics=("accuracy",), callbacks=(), schedule=None, progress: bool = True,
        clip_grad_norm: float | None = None, resume_from=None, log_every: int = 50,
        on_divergence: str = "raise", tune_threads: bool = True) -> History:
    """Train ``model`` for ``epochs`` epochs; returns the :class:`History`.

    ``schedule`` is an LR scheduler stepped after each epoch. ``resume_from`` is a
    checkpoint written by :class:`ModelCheckpoint`: model, optimizer, schedule and
    history are restored and training continues after the saved epoch, with the
    same shuffling and dropout draws as an uninterrupted run. When the training loss becomes inf or
    NaN, ``on_divergence="raise"`` raises FloatingPointError and ``"stop"`` ends
    training with that epoch in the history (for learning-rate comparisons).

    ``tune_threads`` lets a :class:`xdl.thread_tuning.ThreadTuner` choose, while the
    steps run, how many of its threads a CPU backend's BLAS uses (all of them, half or
    one; same results, different speed); the BLAS gets all its threads back when ``fit``
    returns. ``XDL_TUNE_THREADS=0`` in the environment turns it off too.
    """
    if on_divergence not in ("raise", "stop"):
        raise ValueError(f"fit: on_divergence must be 'raise' or 'stop', got {on_divergence!r}")
    history = History()
    start = 0
    if resume_from is not None:
        from xdl import checkpoint

        saved = checkpoint.load(resume_from, model, optimizer, schedule)
        start = int(saved.epoch or 0)
        for key, values in (saved.header.get("history") or {}).items():
            history[key] = list(values)
    state = TrainingState(model, optimizer, schedule, history, epoch=start)
    tuner = _thread_tuner(model) if tune_threads else None
    with tuner or contextlib.nullcontext():
        for callback in callbacks:
            callback.on_train_begin(state)
        for epoch in range(start, epochs):
            began = time.perf_counter()
            backends.seed_epoch(epoch)
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(epoch)
            bar = tqdm(total=len(train_loader), desc=f"epoch {epoch + 1}/{epochs}",
                       disable=not progress, leave=True, mininterval=0.5)
            try:
                logs = train_epoch(model, loss_fn, optimizer, train_loader, metrics,
                                   clip_grad_norm, bar, log_every, callbacks, state, tuner)
                logs["lr"] = optimizer.param_groups[0]["lr"]
                if val_loader is not None:
                    logs.update({f"val_{k}": v
                                 for k, v in evaluate(model, loss_fn, val_loader, metrics).items()})
                logs["time"] = time.perf_counter() - began
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "lr"},
                                refresh=True)
            finally:
                bar.close()
            history.append(logs)
            if not math.isfinite(logs["loss"]):
                if on_divergence == "raise":
                    raise FloatingPointError(f"fit: the training loss became {logs['loss']} at "
                                             f"epoch {epoch + 1}; lower the learning rate")
                break
            if schedule is not None:
                schedule.step()
            state.epoch = epoch + 1
            for callback in callbacks:
                callback.on_epoch_end(state, logs)
            if state.stop:
                break
        for callback in callbacks:
            callback.on_train_end(state)
    return history
