"""Read and write IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a header followed by the array's elements, big-endian, in C order::

    0x00 0x00 <type code> <ndim>      magic: two zero bytes, the element type, the rank
    <dim 0> ... <dim ndim-1>          one big-endian uint32 per dimension
    <data>                            prod(dims) elements, big-endian

Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
Files are often gzip-compressed; :func:`read_idx` recognises gzip by its magic bytes
(``1f 8b``), whatever the file is called.
"""

from __future__ import annotations

import gzip
import os
import zlib
from math import prod

import numpy as np

__all__ = ["DatasetFileError", "read_idx", "write_idx"]

# type code -> big-endian dtype of the stored elements
_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class DatasetFileError(ValueError):
    """A dataset file exists but is not what it should be (bad header, truncated, ...)."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a native-endian NumPy array.

    Raises :class:`DatasetFileError`, naming the file and the problem, when the file
    has a wrong magic number, an unknown type code, too few or too many data bytes,
    or is a corrupt gzip stream.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        raw = _gunzip(path, raw)
    dtype, shape, offset = _parse_header(path, raw)
    expected = prod(shape) * dtype.itemsize
    got = len(raw) - offset
    if got < expected:
        raise DatasetFileError(
            f"{os.fspath(path)}: truncated IDX file: expected {expected} bytes of data "
            f"for shape {shape}, got {got}"
        )
    if got > expected:
        raise DatasetFileError(
            f"{os.fspath(path)}: {got - expected} trailing bytes after the {expected} bytes "
            f"of data for shape {shape}"
        )
    data = np.frombuffer(raw, dtype=dtype, count=prod(shape), offset=offset)
    return data.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; gzip-compressed when ``path`` ends in ``.gz``."""
    array = np.asarray(array)
    code = _type_code(path, array.dtype)
    if array.ndim > 255:
        raise ValueError(f"{os.fspath(path)}: IDX stores at most 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes()
    if os.fspath(path).endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with open(path, "wb") as f:
        f.write(payload)


def _gunzip(path: str | os.PathLike, raw: bytes) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetFileError(f"{os.fspath(path)}: corrupt gzip data ({exc})") from exc


def _parse_header(path: str | os.PathLike, raw: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
    """Return (stored dtype, shape, offset of the data) from an IDX header."""
    name = os.fspath(path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        got = " ".join(f"0x{b:02x}" for b in raw[:4]) or "an empty file"
        raise DatasetFileError(
            f"{name}: not an IDX file: expected magic 0x0000 then a type code, got {got}"
        )
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _DTYPES)
        raise DatasetFileError(f"{name}: unknown IDX type code 0x{code:02X} (known: {known})")
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DatasetFileError(
            f"{name}: truncated IDX header: expected {ndim} dimensions ({offset} bytes), "
            f"got {len(raw)} bytes"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    return _DTYPES[code], shape, offset


def _type_code(path: str | os.PathLike, dtype: np.dtype) -> int:
    for code, stored in _DTYPES.items():
        if dtype.newbyteorder("=") == stored.newbyteorder("="):
            return code
    raise ValueError(
        f"{os.fspath(path)}: IDX cannot store dtype {dtype}; "
        "use uint8, int8, int16, int32, float32 or float64"
    )
