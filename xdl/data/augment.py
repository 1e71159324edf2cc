"""Data augmentation on the backend: random crops of the zero-padded image and
horizontal flips, applied to each training batch where it lives (CPU or GPU).

For a batch x (N, C, H, W), zero padding p and per-sample draws (a_n, b_n) ∈ [0, 2p]²,
f_n ∈ {0, 1}, the augmented batch is

    y[n, c, i, j] = x_p[n, c, a_n + i, b_n + (W − 1 − j if f_n else j)]

(x_p the padded image): one gather by flat indices, so flips and crops cost one pass
and need only ``take`` from the array API. The draws (3 numbers per image) come from
a host generator the :class:`~xdl.data.DataLoader` seeds with (seed, epoch, batch), so
they depend only on those, as the shuffle does: a run resumed at epoch e augments
exactly as an uninterrupted one, on every backend.
"""

from __future__ import annotations

import numpy as np

from xdl import backends
from xdl.nn.functional import pad_spatial


def crop_and_flip(x, offsets, flips, padding: int):
    """y[n, c, i, j] = x_p[n, c, offsets[n, 0] + i, offsets[n, 1] + j'] with j' = W − 1 − j
    where ``flips[n]`` else j; ``offsets`` (N, 2) int64 in [0, 2·padding], ``flips``
    (N,) bool, both on x's device."""
    xp = backends.namespace(x)
    n, c, h, w = x.shape
    padded = pad_spatial(x, (padding, padding), axes=(2, 3))
    hp, wp = h + 2 * padding, w + 2 * padding
    device = x.device
    i = xp.reshape(xp.arange(h, dtype=xp.int64, device=device), (1, 1, h, 1))
    j = xp.reshape(xp.arange(w, dtype=xp.int64, device=device), (1, 1, 1, w))
    flip = xp.reshape(flips, (n, 1, 1, 1))
    rows = xp.reshape(offsets[:, 0], (n, 1, 1, 1)) + i
    cols = xp.reshape(offsets[:, 1], (n, 1, 1, 1)) + xp.where(flip, (w - 1) - j, j)
    planes = xp.reshape(xp.arange(n * c, dtype=xp.int64, device=device), (n, c, 1, 1))
    index = (planes * hp + rows) * wp + cols
    flat = xp.take(xp.reshape(padded, (-1,)), xp.reshape(index, (-1,)), axis=0)
    return xp.reshape(flat, (n, c, h, w))


class RandomCropFlip:
    """Random crop of the image padded by ``padding`` zeros on each side, back to its
    size (a shift by up to ``padding`` pixels), and, with ``flip``, a horizontal flip of
    half the images. A ``DataLoader`` transform: ``transform(x, rng)`` with x a batch
    (N, C, H, W) on any backend and rng a host ``numpy.random.Generator``."""

    def __init__(self, padding: int = 4, flip: bool = True):
        if padding < 0:
            raise ValueError(f"RandomCropFlip: padding must be >= 0, got {padding}")
        self.padding, self.flip = int(padding), bool(flip)

    def __call__(self, x, rng: np.random.Generator):
        if x.ndim != 4:
            raise ValueError(f"RandomCropFlip: expected a batch (N, C, H, W), "
                             f"got {tuple(x.shape)}")
        n = x.shape[0]
        offsets = rng.integers(0, 2 * self.padding + 1, size=(n, 2))
        flips = rng.random(n) < 0.5 if self.flip else np.zeros(n, dtype=bool)
        backend = backends.backend_of(x)
        return crop_and_flip(x, backend.asarray(offsets, "int64"),
                             backend.asarray(flips, "bool"), self.padding)

    def __repr__(self):
        return f"RandomCropFlip(padding={self.padding}, flip={self.flip})"
