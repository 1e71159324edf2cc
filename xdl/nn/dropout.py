"""Inverted dropout: scale at training time so evaluation is the identity."""

from __future__ import annotations

from xdl import backends
from xdl.nn.module import Module


class Dropout(Module):
    """Training: y = x ⊙ m / (1 − p), m_i ~ Bernoulli(1 − p), drawn with the backend's
    own generator;  dx = dy ⊙ m / (1 − p).  Evaluation: y = x, dx = dy.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1), got {p}")
        self.p = float(p)

    def mask_shape(self, x) -> tuple[int, ...]:
        """The shape of m: one draw per element (broadcast over the axes of size 1)."""
        return tuple(x.shape)

    def forward(self, x):
        shape = self.mask_shape(x)
        if not self.training or self.p == 0.0:
            self.save_for_backward(None)
            return x
        xp = backends.namespace(x)
        keep = backends.uniform(shape, like=x) >= self.p
        mask = xp.astype(keep, x.dtype) * (1.0 / (1.0 - self.p))
        self.save_for_backward(mask)
        return x * mask

    def backward(self, grad):
        (mask,) = self.saved
        return grad if mask is None else grad * mask

    def extra_repr(self):
        return f"p={self.p}"


class Dropout2d(Dropout):
    """Channel dropout on (N, C, H, W) or (N, C, L) input: whole channels are zeroed.

    Training: y = x ⊙ m / (1 − p) with one m_{n,c} ~ Bernoulli(1 − p) per sample and
    channel, shared by all its positions (m has shape (N, C, 1, 1) or (N, C, 1));
    dx = dy ⊙ m / (1 − p).  Evaluation: y = x, dx = dy.
    (PyTorch only warns on input that is not 3-D or 4-D; this raises.)
    """

    def mask_shape(self, x) -> tuple[int, ...]:
        if x.ndim not in (3, 4):
            raise ValueError(f"{self!r}: expected input of shape (N, C, H, W) or (N, C, L), "
                             f"got {tuple(x.shape)}")
        return tuple(x.shape[:2]) + (1,) * (x.ndim - 2)
