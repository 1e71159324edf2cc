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
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self.save_for_backward(None)
            return x
        xp = backends.namespace(x)
        keep = backends.uniform(x.shape, like=x) >= self.p
        mask = xp.astype(keep, x.dtype) * (1.0 / (1.0 - self.p))
        self.save_for_backward(mask)
        return x * mask

    def backward(self, grad):
        (mask,) = self.saved
        return grad if mask is None else grad * mask

    def extra_repr(self):
        return f"p={self.p}"
