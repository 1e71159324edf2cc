"""Losses as Modules: ``loss = loss_fn(pred, target)`` returns a 0-d array and
``loss_fn.backward()`` returns d loss / d pred.

``reduction`` is ``"mean"`` (default), ``"sum"`` or ``"none"`` (per-sample losses;
then ``backward(grad)`` takes the gradient of the per-sample losses).
"""

from __future__ import annotations

import math

from xdl import backends
from xdl.nn.activation import log_softmax, sigmoid, softplus
from xdl.nn.module import Module

REDUCTIONS = ("mean", "sum", "none")


class Loss(Module):
    """Base of the losses: reduction of per-sample values and the matching backward."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of "
                             f"{REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def _reduce(self, xp, values, count=None):
        """Reduce per-sample ``values``; returns (loss, d loss / d values as a factor)."""
        if self.reduction == "none":
            return values, None
        total = xp.sum(values)
        if self.reduction == "sum":
            return total, 1.0
        denominator = math.prod(values.shape) if count is None else count
        return total / denominator, 1.0 / denominator

    def _upstream(self, grad, scale):
        """The gradient flowing into the per-sample values: ``grad`` × reduction factor."""
        if self.reduction == "none":
            if grad is None:
                raise ValueError(f"{type(self).__name__}(reduction='none').backward needs "
                                 "the gradient of the per-sample losses")
            return grad
        return scale if grad is None else grad * scale

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


def _check_same_shape(loss, pred, target):
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"{type(loss).__name__}: expected target of the prediction's shape "
                         f"{tuple(pred.shape)}, got {tuple(target.shape)}")


class MSELoss(Loss):
    """l = (p − t)²;  dp = 2(p − t) · upstream."""

    def forward(self, pred, target):
        _check_same_shape(self, pred, target)
        diff = pred - target
        loss, scale = self._reduce(backends.namespace(pred), diff * diff)
        self.save_for_backward(diff, scale)
        return loss

    def backward(self, grad=None):
        diff, scale = self.saved
        return 2.0 * diff * self._upstream(grad, scale)


class CrossEntropyLoss(Loss):
    """Softmax + cross-entropy on logits z of shape (N, C) or (N, C, d1, ...).

    Targets are class indices (N,) / (N, d1, ...) or class probabilities of z's shape.
    With q the target distribution (one-hot, optionally smoothed by ``label_smoothing``
    ε: q = (1 − ε)·onehot + ε/C) and p = softmax(z):

        l = −Σ_c q_c log p_c          dz = (p · Σ_c q_c − q) · upstream

    Samples whose index equals ``ignore_index`` contribute nothing, and "mean" divides
    by the number of the others (PyTorch's convention). Log-probabilities are computed
    as z − max z − log Σ exp(z − max z), so large logits do not overflow. Indices
    outside [0, C) are not checked (that would need a host round-trip): they count
    as ignored.
    """

    def __init__(self, reduction: str = "mean", ignore_index: int = -100,
                 label_smoothing: float = 0.0):
        super().__init__(reduction)
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits, target):
        xp = backends.namespace(logits)
        if logits.ndim < 2:
            raise ValueError(f"CrossEntropyLoss: expected logits of shape (N, C, ...), "
                             f"got {tuple(logits.shape)}")
        classes = logits.shape[1]
        moved = logits if logits.ndim == 2 else xp.moveaxis(logits, 1, -1)
        z = xp.reshape(moved, (-1, classes))
        q, count, sample_shape = self._target_distribution(xp, logits, target, classes)
        logp = log_softmax(xp, z)
        per_sample = xp.reshape(-xp.sum(q * logp, axis=1), sample_shape)
        loss, scale = self._reduce(xp, per_sample, count)
        self.save_for_backward(logp, q, scale, tuple(moved.shape))
        return loss

    def _target_distribution(self, xp, logits, target, classes):
        sample_shape = (logits.shape[0],) + tuple(logits.shape[2:])
        if "float" in backends.dtype_name(target.dtype):
            if tuple(target.shape) != tuple(logits.shape):
                raise ValueError(f"CrossEntropyLoss: probability targets must have the "
                                 f"logits' shape {tuple(logits.shape)}, got "
                                 f"{tuple(target.shape)}")
            moved = target if target.ndim == 2 else xp.moveaxis(target, 1, -1)
            q = xp.reshape(moved, (-1, classes))
            if self.label_smoothing:
                q = (1.0 - self.label_smoothing) * q + self.label_smoothing / classes
            return q, None, sample_shape
        if tuple(target.shape) != sample_shape:
            raise ValueError(f"CrossEntropyLoss: expected class indices of shape "
                             f"{sample_shape} for logits {tuple(logits.shape)}, got "
                             f"{tuple(target.shape)}")
        labels = xp.reshape(target, (-1, 1))
        classes_row = xp.reshape(xp.arange(classes, dtype=target.dtype, device=target.device),
                                 (1, classes))
        onehot = xp.astype(labels == classes_row, logits.dtype)  # 0 rows off [0, C)
        if 0 <= self.ignore_index < classes:
            onehot = onehot * xp.astype(labels != self.ignore_index, logits.dtype)
        if self.label_smoothing:
            valid = xp.sum(onehot, axis=1, keepdims=True)
            q = (1.0 - self.label_smoothing) * onehot + self.label_smoothing / classes * valid
            return q, xp.sum(valid), sample_shape
        return onehot, xp.sum(onehot), sample_shape

    def backward(self, grad=None):
        logp, q, scale, moved_shape = self.saved
        xp = backends.namespace(logp)
        upstream = self._upstream(grad, scale)
        if self.reduction == "none":
            upstream = xp.reshape(upstream, (-1, 1))
        dz = (xp.exp(logp) * xp.sum(q, axis=1, keepdims=True) - q) * upstream
        dz = xp.reshape(dz, moved_shape)
        return dz if len(moved_shape) == 2 else xp.moveaxis(dz, -1, 1)

    def extra_repr(self):
        return (f"reduction={self.reduction!r}, ignore_index={self.ignore_index}, "
                f"label_smoothing={self.label_smoothing}")


class BCEWithLogitsLoss(Loss):
    """Sigmoid + binary cross-entropy on logits x with targets t ∈ [0, 1]:

        l = max(x, 0) − x·t + log(1 + e^{−|x|})      dx = (σ(x) − t) · upstream
    """

    def forward(self, logits, target):
        _check_same_shape(self, logits, target)
        xp = backends.namespace(logits)
        loss, scale = self._reduce(xp, softplus(logits) - logits * target)
        self.save_for_backward(logits, target, scale)
        return loss

    def backward(self, grad=None):
        logits, target, scale = self.saved
        xp = backends.namespace(logits)
        return (sigmoid(xp, logits) - target) * self._upstream(grad, scale)


class PerceptronLoss(Loss):
    """The perceptron criterion on scores s with labels y ∈ {−1, +1}:

        l = max(0, −y·s)      ds = −y · [y·s ≤ 0] · upstream

    Only misclassified samples (y·s ≤ 0) contribute, so SGD with batch size 1 on
    this loss is Rosenblatt's rule w ← w + η·y·x.
    """

    def forward(self, scores, target):
        xp = backends.namespace(scores)
        column = scores.ndim == 2 and scores.shape[1] == 1
        if column:
            scores = xp.reshape(scores, (-1,))
        _check_same_shape(self, scores, target)
        margin = target * scores
        loss, scale = self._reduce(xp, xp.maximum(-margin, 0.0))
        self.save_for_backward(margin, target, scale, column)
        return loss

    def backward(self, grad=None):
        margin, target, scale, column = self.saved
        xp = backends.namespace(margin)
        ds = xp.where(margin <= 0, -target, 0.0) * self._upstream(grad, scale)
        return xp.reshape(ds, (-1, 1)) if column else ds
