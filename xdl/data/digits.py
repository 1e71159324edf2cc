"""UCI optical handwritten digits: 1,797 images of 8x8 pixels, grey levels 0..16, 10 classes.

Shipped inside the package (``xdl/data/digits.csv.gz``, 57 KB), so it needs no network
and no data folder: each row holds 64 pixel values in row-major order, then the label.

Source: E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten Digits", UCI
Machine Learning Repository, 1998
(https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits),
CC BY 4.0; this is the copy of its test set that scikit-learn ships as ``load_digits``.
"""

from __future__ import annotations

import gzip
import io
import zlib
from importlib import resources

import numpy as np

from xdl.data.idx import DatasetFileError

__all__ = ["digits"]

_RESOURCE = "digits.csv.gz"
_N_ROWS = 1797


def digits(
    split: str | None = None, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The digits as ``(images uint8 (N, 8, 8) in 0..16, labels int64 (N,))``.

    With ``split=None`` all 1,797 rows in file order. With ``"train"`` or ``"test"``
    the rows are shuffled with ``seed`` (not stratified) and the first
    ``round(test_fraction * 1797)`` of them are the test split, the rest the train
    split: the same seed always gives the same split, and the two are disjoint and
    together hold every row.
    """
    if split not in (None, "train", "test"):
        raise ValueError(f"digits: split must be None, 'train' or 'test', got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"digits: test_fraction must lie in (0, 1), got {test_fraction}")
    images, labels = _read()
    if split is None:
        return images, labels
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = round(test_fraction * len(labels))
    rows = order[:n_test] if split == "test" else order[n_test:]
    return images[rows], labels[rows]


def _read() -> tuple[np.ndarray, np.ndarray]:
    resource = resources.files("xdl.data") / _RESOURCE
    try:
        text = gzip.decompress(resource.read_bytes()).decode("ascii")
        table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise DatasetFileError(f"{resource}: cannot read the digits table ({exc})") from exc
    if table.shape != (_N_ROWS, 65):
        raise DatasetFileError(
            f"{resource}: expected {_N_ROWS} rows of 65 integers, got shape {table.shape}"
        )
    pixels, labels = table[:, :64], table[:, 64]
    if pixels.min() < 0 or pixels.max() > 16 or labels.min() < 0 or labels.max() > 9:
        raise DatasetFileError(f"{resource}: pixels must lie in 0..16 and labels in 0..9")
    return pixels.astype(np.uint8).reshape(-1, 8, 8), labels
