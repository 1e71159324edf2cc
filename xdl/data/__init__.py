"""Datasets (host NumPy arrays) and the DataLoader that batches them on a backend."""

from xdl.data.digits import digits
from xdl.data.idx import DatasetFileError, read_idx, write_idx
from xdl.data.loader import DataLoader
from xdl.data.mnist import fashion_mnist, mnist
from xdl.data.synthetic import linearly_separable_3d, spiral, xor

__all__ = [
    "DataLoader", "DatasetFileError", "digits", "fashion_mnist", "linearly_separable_3d",
    "mnist", "read_idx", "spiral", "write_idx", "xor",
]
