"""DataLoader: seeded shuffling and batching of in-memory arrays on any backend."""

from __future__ import annotations

import math

import numpy as np

from xdl import backends


class DataLoader:
    """Batches of ``arrays`` (host NumPy, same first dimension) on a backend.

    The arrays are converted once (floating arrays to ``dtype``, integer labels to
    int64) and moved to the backend's device once, so an epoch costs one small
    transfer of shuffled indices and no per-batch host copies. ``uint8`` images
    are converted to ``dtype`` as they are; scale them first if needed.

    Shuffling is seeded: the order of epoch e depends only on (seed, e), so a run
    resumed at epoch e sees the same batches as an uninterrupted one. ``fit``
    calls :meth:`set_epoch`; iterating without it advances the epoch by itself.

    ``transform(x, rng)`` (e.g. :class:`xdl.data.augment.RandomCropFlip`) is applied to
    the first array of each batch on the device; ``rng`` is a host generator seeded
    with (seed, epoch, batch index), so its draws are as reproducible as the shuffle.
    """

    def __init__(self, *arrays, batch_size: int = 32, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, dtype: str = "float32", backend=None, device=None,
                 transform=None):
        if not arrays:
            raise ValueError("DataLoader: give at least one array")
        lengths = {len(a) for a in arrays}
        if len(lengths) != 1:
            raise ValueError(f"DataLoader: arrays must have the same length, got "
                             f"{[len(a) for a in arrays]}")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, int(seed)
        self.drop_last = drop_last
        self.dtype = dtype
        self.num_samples = lengths.pop()
        self.backend = backends.resolve(backend, device)
        self.arrays = [self.backend.asarray(a, _target_dtype(np.asarray(a), dtype))
                       for a in arrays]
        self.transform = transform
        self.epoch = 0
        self._epoch_set = False

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffle order of ``epoch`` for the next iteration."""
        self.epoch, self._epoch_set = int(epoch), True

    def __len__(self):
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self):
        xp = self.backend.xp
        if self.shuffle:
            order = backends.host_generator([self.seed, self.epoch]).permutation(
                self.num_samples)
            order = self.backend.asarray(order, "int64")
        else:
            order = None
        epoch = self.epoch
        if not self._epoch_set:
            self.epoch += 1
        self._epoch_set = False
        for step, start in enumerate(range(0, len(self) * self.batch_size, self.batch_size)):
            stop = min(start + self.batch_size, self.num_samples)
            if order is None:
                batch = tuple(a[start:stop, ...] for a in self.arrays)
            else:
                index = order[start:stop]
                batch = tuple(xp.take(a, index, axis=0) for a in self.arrays)
            if self.transform is not None:
                rng = backends.host_generator([self.seed, epoch, step])
                batch = (self.transform(batch[0], rng),) + batch[1:]
            yield batch


def _target_dtype(array: np.ndarray, dtype: str) -> str:
    if array.dtype.kind == "f" or array.dtype == np.uint8:
        return dtype
    if array.dtype.kind in "iu":
        return "int64"
    if array.dtype.kind == "b":
        return "bool"
    raise TypeError(f"DataLoader: cannot batch arrays of dtype {array.dtype}")
