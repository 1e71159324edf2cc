"""Datasets (host NumPy arrays) and the DataLoader that batches them on a backend."""

from xdl.data.digits import digits
from xdl.data.idx import DatasetFileError, read_idx, write_idx
from xdl.data.loader import DataLoader
from xdl.data.mnist import fashion_mnist, mnist
from xdl.data.synthetic import linearly_separable_3d, spiral, xor
from xdl.data.text import (
    CharVocab,
    Vocab,
    char_batches,
    read_glove,
    read_imdb,
    read_sentiment_csv,
    tokenize,
)
from xdl.data.timeseries import (
    MinMaxScaler,
    Standardizer,
    book_curve,
    chronological_split,
    read_price_csv,
    sliding_windows,
)

__all__ = [
    "CharVocab", "DataLoader", "DatasetFileError", "MinMaxScaler", "Standardizer", "Vocab",
    "book_curve", "char_batches", "chronological_split", "digits", "fashion_mnist",
    "linearly_separable_3d", "mnist", "read_glove", "read_idx", "read_imdb",
    "read_price_csv", "read_sentiment_csv", "sliding_windows", "spiral", "tokenize",
    "write_idx", "xor",
]
