"""Normalisation layers: BatchNorm1d, BatchNorm2d, LayerNorm.

Batch normalisation works per channel c over the n = N·L values of the batch and the
spatial positions (L = 1 for (N, C) input, L for (N, C, L), H·W for (N, C, H, W)).
Inputs are viewed as (N, C, L) without copying, so the per-channel sums are one
matrix-vector product per sample: fast for any memory layout, including the
channels-last views that the convolutions return.
"""

from __future__ import annotations

import math

from xdl import backends
from xdl.nn import init
from xdl.nn.module import Module


def _per_channel(v, like):
    """The (C,) vector ``v`` laid out as one sample (1, C, ...) of ``like`` (N, C, ...).

    Built as zeros_like(like[:1]) + v, so it shares ``like``'s memory layout (NumPy,
    CuPy and PyTorch keep it): an element-wise pass of ``like`` against it runs as long
    contiguous loops, about twice as fast in NumPy as broadcasting a (C, 1, 1) vector.
    (An empty batch gives an empty array, which broadcasts against it as well.)
    """
    xp = backends.namespace(like)
    sample = like[:min(1, like.shape[0]), ...]
    return xp.zeros_like(sample) + xp.reshape(v, (v.shape[0],) + (1,) * (like.ndim - 2))


def _as_ncl(a):
    """(N, C, ...) → (N, C, L), a view whenever the layout allows one."""
    return backends.namespace(a).reshape(a, (a.shape[0], a.shape[1], math.prod(a.shape[2:])))


def _channel_sum(a):
    """Σ over every axis but 1 of an (N, C, ...) array, as (C,).

    Matrix-vector products over the axis stored innermost, then a sum: (C, L) @ 1_L per
    sample for NCHW or channels-last views, or 1_N per pixel, (L, C, N) @ 1_N, where the
    images are innermost (a real-form DFT convolution's (H, W, C, N) output); either way
    a fast BLAS reduction, where one over a strided axis would not be.
    """
    xp = backends.namespace(a)
    a3 = _as_ncl(a)
    a_strides = backends.strides(a3)
    if a_strides is not None and a3.shape[0] > 1 and a_strides[0] < min(a_strides[1:]):
        a3 = xp.permute_dims(a3, (2, 1, 0))                  # (L, C, N), N innermost
    ones = xp.ones((a3.shape[2],), dtype=a3.dtype, device=a3.device)
    return xp.sum(a3 @ ones, axis=0)


def _channel_dot(a, b):
    """Σ a·b over every axis but 1 of two (N, C, ...) arrays, as (C,).

    (vecdot over L would skip the product array but is several times slower on
    channels-last views.)
    """
    return _channel_sum(a * b)


class _BatchNorm(Module):
    """Batch normalisation over axis 1 (channels); the subclasses fix the input rank.

    forward, training (or ``track_running_stats=False``), per channel over n values:
        μ = Σx / n      σ² = Σ(x − μ)² / n      x̂ = (x − μ) / √(σ² + ε)      y = γ x̂ + β
        running_mean ← (1 − m)·running_mean + m·μ
        running_var  ← (1 − m)·running_var  + m·σ²·n / (n − 1)       (unbiased σ²)
    with m = ``momentum``, or m = 1 / num_batches_tracked when ``momentum`` is None (a
    cumulative average); num_batches_tracked counts the updates.
    forward, evaluation: the same with μ, σ² replaced by the running statistics.

    backward, training (the gradient flows through μ and σ², means over n values):
        dγ += Σ dy·x̂      dβ += Σ dy
        dx = γ / √(σ² + ε) · (dy − mean(dy) − x̂·mean(dy·x̂))
    backward, evaluation (μ, σ² are constants):
        dγ += Σ dy·x̂      dβ += Σ dy      dx = γ / √(running_var + ε) · dy

    ``weight`` γ starts at ones and ``bias`` β at zeros (absent when ``affine=False``,
    then γ = 1, β = 0); buffers ``running_mean`` (zeros), ``running_var`` (ones) and
    ``num_batches_tracked`` (int64) exist when ``track_running_stats=True``.
    """

    ndims: tuple[int, ...] = ()  # the accepted input ranks ...
    shapes = ""                  # ... and shapes, for error messages

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        if self.affine:
            self.weight = init.ones_(init.empty_parameter((num_features,)))
            self.bias = init.zeros_(init.empty_parameter((num_features,)))
        else:
            self.weight = self.bias = None
        if self.track_running_stats:
            backend = backends.current()
            xp, device = backend.xp, backend.device
            dtype = backend.dtype(init.DEFAULT_DTYPE)
            self.register_buffer("running_mean",
                                 xp.zeros((num_features,), dtype=dtype, device=device))
            self.register_buffer("running_var",
                                 xp.ones((num_features,), dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked",
                                 xp.zeros((), dtype=xp.int64, device=device))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def _check_input(self, x) -> None:
        if x.ndim not in self.ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{self!r}: expected input of shape {self.shapes} with "
                             f"C = {self.num_features}, got {tuple(x.shape)}")

    def forward(self, x):
        self._check_input(x)
        if self.training or self.running_mean is None:
            return self._forward_batch_stats(x)
        return self._forward_running_stats(x)

    def _forward_batch_stats(self, x):
        n = math.prod(x.shape) // self.num_features
        if n == 1:
            raise ValueError(f"{self!r}: expected more than 1 value per channel when "
                             f"training, got input of shape {tuple(x.shape)}")
        xp = backends.namespace(x)
        divisor = max(n, 1)                         # an empty batch: μ = σ² = 0, no NaN
        mean = _channel_sum(x) / divisor
        xc = x - _per_channel(mean, x)
        var = _channel_dot(xc, xc) / divisor
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        if self.training and self.running_mean is not None:
            self._update_running_stats(mean, var, n)
        y = xc * _per_channel(self._scale(inv_std), x)
        if self.bias is not None:
            y += _per_channel(self.bias.data, x)
        self.save_for_backward(True, xc, inv_std)
        return y

    def _forward_running_stats(self, x):
        xp = backends.namespace(x)
        mean = self.running_mean
        inv_std = 1.0 / xp.sqrt(self.running_var + self.eps)
        scale = self._scale(inv_std)
        shift = -mean * scale if self.bias is None else self.bias.data - mean * scale
        y = x * _per_channel(scale, x)
        y += _per_channel(shift, x)
        self.save_for_backward(False, x, inv_std, mean)
        return y

    def _scale(self, inv_std):
        """γ / √(σ² + ε) (1 / √(σ² + ε) without affine parameters)."""
        return inv_std if self.weight is None else self.weight.data * inv_std

    def _update_running_stats(self, mean, var, n: int) -> None:
        xp = backends.namespace(mean)
        dtype = self.running_mean.dtype
        count = self.num_batches_tracked + 1
        if n == 0:                      # PyTorch: an empty batch only counts
            self.num_batches_tracked = count
            return
        factor = 1.0 / xp.astype(count, dtype) if self.momentum is None else self.momentum
        unbiased = var * (n / (n - 1))
        # assigned in registration order, which keeps the state_dict order PyTorch's
        self.running_mean = xp.astype((1.0 - factor) * self.running_mean + factor * mean,
                                      dtype)
        self.running_var = xp.astype((1.0 - factor) * self.running_var + factor * unbiased,
                                     dtype)
        self.num_batches_tracked = count

    def backward(self, grad):
        batch_stats, *saved = self.saved
        if batch_stats:
            return self._backward_batch_stats(grad, *saved)
        return self._backward_running_stats(grad, *saved)

    def backward_params(self, grad) -> None:
        """dγ += Σ dy·x̂, dβ += Σ dy, without the input gradient."""
        if self.weight is None:
            return
        batch_stats, *saved = self.saved
        if batch_stats:
            xc, inv_std = saved
            self._accumulate_params(_channel_dot(grad, xc) * inv_std, _channel_sum(grad))
        else:
            self._accumulate_running_stats_params(grad, *saved)

    def _accumulate_params(self, dweight, dbias) -> None:
        if self.weight is not None:
            self.weight.accumulate(dweight)
            self.bias.accumulate(dbias)

    def _backward_batch_stats(self, grad, xc, inv_std):
        n = max(1, math.prod(grad.shape) // self.num_features)
        sum_dy = _channel_sum(grad)
        sum_dy_xc = _channel_dot(grad, xc)          # Σ dy·(x − μ) = σ·Σ dy·x̂
        self._accumulate_params(sum_dy_xc * inv_std, sum_dy)
        # dx = γ/σ · (dy − mean(dy) − (x − μ)·mean(dy·(x − μ)) / σ²), in place
        dx = xc * _per_channel(-(inv_std * inv_std) * (sum_dy_xc / n), xc)
        dx += grad
        dx -= _per_channel(sum_dy / n, xc)
        dx *= _per_channel(self._scale(inv_std), xc)
        return dx

    def _backward_running_stats(self, grad, x, inv_std, mean):
        self._accumulate_running_stats_params(grad, x, inv_std, mean)
        return grad * _per_channel(self._scale(inv_std), grad)

    def _accumulate_running_stats_params(self, grad, x, inv_std, mean) -> None:
        if self.weight is not None:
            xhat = (x - _per_channel(mean, x)) * _per_channel(inv_std, x)
            self._accumulate_params(_channel_dot(grad, xhat), _channel_sum(grad))

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) input, per channel C (see _BatchNorm).

    n = N values per channel for (N, C), n = N·L for (N, C, L).
    """

    ndims = (2, 3)
    shapes = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) input, per channel C over n = N·H·W values.

    (See _BatchNorm for the formulas; names, arguments, parameters and buffers are
    PyTorch's, so state dicts are interchangeable.)
    """

    ndims = (4,)
    shapes = "(N, C, H, W)"


class LayerNorm(Module):
    """Layer normalisation over the last D = len(normalized_shape) axes of each sample.

    forward, with μ, σ² (biased) over the normalised axes of each sample:
        x̂ = (x − μ) / √(σ² + ε)      y = γ ⊙ x̂ + β
    backward, with g = dy ⊙ γ and means over the normalised axes:
        dγ += Σ_samples dy ⊙ x̂      dβ += Σ_samples dy
        dx = (g − mean(g) − x̂·mean(g ⊙ x̂)) / √(σ² + ε)

    ``weight`` γ (ones) and ``bias`` β (zeros) have shape ``normalized_shape``; there
    is no γ, β with ``elementwise_affine=False`` and no β with ``bias=False``.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(d) for d in normalized_shape)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.weight = self.bias = None
        if self.elementwise_affine:
            self.weight = init.ones_(init.empty_parameter(self.normalized_shape))
            if bias:
                self.bias = init.zeros_(init.empty_parameter(self.normalized_shape))

    def forward(self, x):
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            expected = ", ".join(str(d) for d in self.normalized_shape)
            raise ValueError(f"{self!r}: expected input of shape (..., {expected}), "
                             f"got {tuple(x.shape)}")
        xp = backends.namespace(x)
        d = math.prod(self.normalized_shape)
        x2 = xp.reshape(x, (-1, d))                      # one sample per row
        xhat = x2 - xp.mean(x2, axis=1, keepdims=True)
        var = xp.expand_dims(xp.vecdot(xhat, xhat), axis=1) / d
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat *= inv_std
        self.save_for_backward(xhat, inv_std)
        if self.weight is None:
            return xp.reshape(xhat, x.shape)
        y = xhat * xp.reshape(self.weight.data, (d,))
        if self.bias is not None:
            y += xp.reshape(self.bias.data, (d,))
        return xp.reshape(y, x.shape)

    def backward(self, grad):
        xhat, inv_std = self.saved
        xp = backends.namespace(grad)
        d = xhat.shape[1]
        dy = xp.reshape(grad, (-1, d))
        if self.weight is None:
            g = dy
        else:
            self._accumulate_params(dy, xhat)
            g = dy * xp.reshape(self.weight.data, (d,))
        dx = g - xp.mean(g, axis=1, keepdims=True)
        dx -= xhat * (xp.expand_dims(xp.vecdot(g, xhat), axis=1) / d)
        dx *= inv_std
        return xp.reshape(dx, grad.shape)

    def backward_params(self, grad) -> None:
        """dγ += Σ dy ⊙ x̂, dβ += Σ dy, without the input gradient."""
        if self.weight is not None:
            xhat, _ = self.saved
            xp = backends.namespace(grad)
            self._accumulate_params(xp.reshape(grad, (-1, xhat.shape[1])), xhat)

    def _accumulate_params(self, dy, xhat) -> None:
        xp = backends.namespace(dy)
        self.weight.accumulate(xp.reshape(xp.sum(dy * xhat, axis=0), self.normalized_shape))
        if self.bias is not None:
            self.bias.accumulate(xp.reshape(xp.sum(dy, axis=0), self.normalized_shape))

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")
