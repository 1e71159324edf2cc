"""xdl: deep learning from scratch, on any array-API backend.

Every layer has a hand-written forward and backward; the same code runs on NumPy,
CuPy, PyTorch tensors and array_api_strict (see :mod:`xdl.backends`).
"""

from xdl import backends, nn, optim
from xdl.backends import manual_seed

__version__ = "0.1.0"

__all__ = ["__version__", "backends", "manual_seed", "nn", "optim"]
