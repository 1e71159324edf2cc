"""Fully connected layers: Linear, Flatten, Unflatten, Identity."""

from __future__ import annotations

import math

from xdl import backends
from xdl.nn import init
from xdl.nn.module import Module


def check_last_dim(layer: Module, x, expected: int, what: str = "features") -> None:
    """Raise a clear error when ``x``'s last axis is not ``expected`` long."""
    if x.ndim == 0 or x.shape[-1] != expected:
        raise ValueError(
            f"{layer!r}: expected input of shape (..., {expected}) ({expected} {what}), "
            f"got {tuple(x.shape)}"
        )


def _rows(a):
    """``a`` (..., features) as a 2-D (rows, features) array: one matrix product over all
    rows runs several times faster than a batched product with NumPy's BLAS."""
    return a if a.ndim == 2 else backends.namespace(a).reshape(a, (-1, a.shape[-1]))


class Linear(Module):
    """y = x Wᵀ + b, on inputs of shape (..., in_features).

    weight W: (out_features, in_features); bias b: (out_features,). Both start as
    U(−1/√in, 1/√in), PyTorch's default.

    backward, with X and G the input and output gradient flattened to 2-D:
        dW += Gᵀ X      db += Σ_rows G      dx = G W
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = init.uniform_(init.empty_parameter((out_features, in_features)),
                                    -bound, bound)
        self.bias = (init.uniform_(init.empty_parameter((out_features,)), -bound, bound)
                     if bias else None)

    def forward(self, x):
        check_last_dim(self, x, self.in_features)
        self.save_for_backward(x)
        y = _rows(x) @ self.weight.data.T
        if self.bias is not None:
            y = y + self.bias.data
        return y if x.ndim == 2 else backends.namespace(y).reshape(
            y, tuple(x.shape[:-1]) + (self.out_features,))

    def backward(self, grad):
        self.backward_params(grad)
        dx = _rows(grad) @ self.weight.data
        return dx if grad.ndim == 2 else backends.namespace(dx).reshape(
            dx, tuple(grad.shape[:-1]) + (self.in_features,))

    def backward_params(self, grad) -> None:
        """dW += Gᵀ X, db += Σ_rows G, without the input gradient G W."""
        (x,) = self.saved
        g2 = _rows(grad)
        self.weight.accumulate(g2.T @ _rows(x))
        if self.bias is not None:
            self.bias.accumulate(backends.namespace(g2).sum(g2, axis=0))

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """Merges axes start_dim..end_dim into one: (N, C, H, W) → (N, C·H·W).

    backward reshapes the gradient back to the input's shape, stored in memory like the
    input (an NHWC-stored feature map gets an NHWC-stored gradient: see
    :func:`xdl.backends.same_layout`).
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        shape = tuple(x.shape)
        start = self.start_dim % len(shape)
        end = self.end_dim % len(shape)
        self.save_for_backward(x)
        merged = math.prod(shape[start:end + 1])
        return backends.namespace(x).reshape(x, shape[:start] + (merged,) + shape[end + 1:])

    def backward(self, grad):
        (x,) = self.saved
        return backends.same_layout(backends.namespace(grad).reshape(grad, x.shape), x)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits axis ``dim`` into ``unflattened_size``: (N, C·H·W) → (N, C, H, W).

    backward merges the gradient's axes back into the input's shape. An input whose
    axis ``dim`` does not hold prod(unflattened_size) elements is refused.
    """

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(int(n) for n in unflattened_size)

    def forward(self, x):
        shape = tuple(x.shape)
        dim = self.dim % len(shape)
        if shape[dim] != math.prod(self.unflattened_size):
            raise ValueError(f"{self!r}: expected axis {self.dim} of size "
                             f"{math.prod(self.unflattened_size)}, got input {shape}")
        self.save_for_backward(shape)
        new_shape = shape[:dim] + self.unflattened_size + shape[dim + 1:]
        return backends.namespace(x).reshape(x, new_shape)

    def backward(self, grad):
        (shape,) = self.saved
        return backends.namespace(grad).reshape(grad, shape)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Identity(Module):
    """y = x; dx = dy."""

    def forward(self, x):
        return x

    def backward(self, grad):
        return grad
