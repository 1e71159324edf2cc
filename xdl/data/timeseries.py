"""Time series: the book's synthetic curve, price-table readers, windows, splits and scalers.

Everything here is host-side NumPy, float64 unless stated otherwise.

:func:`read_price_csv` reads the daily price tables the experiments use and recognises
their layout from the first line:

* a header line (``date,open,high,low,close,volume`` with or without a UTF-8 BOM,
  ``Date,Open,...,Volume`` with ``DD-MM-YY`` dates, ...): column names are lowercased,
  a ``date`` column is parsed as dates (``YYYY-MM-DD``, ``YYYY/MM/DD`` or ``DD-MM-YY``);
* no header and a date in the first field: the book's raw CSI-300 file, columns
  ``date, seq, close, volume, turnover`` and a trailing empty field;
* no header and four numbers: the book's preprocessed CSI-300 file, columns
  ``index, close, volume (/1e7), turnover (/1e8)``; it has no dates.

A typical pipeline::

    table = read_price_csv(path)
    series = np.stack([table["close"], table["volume"]], axis=1)
    train, val, test = chronological_split(len(series))
    scaler = Standardizer().fit(series[train])          # statistics of the past only
    x, y = sliding_windows(scaler.transform(series), window=20, target_column=0)
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime

import numpy as np

from xdl.data.idx import DatasetFileError

__all__ = [
    "MinMaxScaler",
    "Standardizer",
    "book_curve",
    "chronological_split",
    "read_price_csv",
    "sliding_windows",
]


# ---------------------------------------------------------------- synthetic curve


def book_curve(
    n: int = 1000, step: float = 0.1, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The noisy periodic curve of the book's RNN chapter, as ``(x, y)`` float64 (n,) arrays.

    ``x = step * arange(n)`` and ``y = sin(pi x / 3) + cos(pi x / 3) + sin(pi x / 1.5)``
    plus Gaussian noise of standard deviation ``noise`` drawn with ``seed``.
    """
    if n < 0:
        raise ValueError(f"book_curve: n must be >= 0, got {n}")
    if noise < 0:
        raise ValueError(f"book_curve: noise must be >= 0, got {noise}")
    x = step * np.arange(n, dtype=np.float64)
    y = np.sin(np.pi * x / 3) + np.cos(np.pi * x / 3) + np.sin(np.pi * x / 1.5)
    y = y + np.random.default_rng(seed).normal(0.0, noise, size=n)
    return x, y


# ---------------------------------------------------------------- windows and splits


def sliding_windows(
    series: np.ndarray, window: int, horizon: int = 1, target_column: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a series into supervised samples ``(inputs, targets)``.

    ``series`` is ``(T,)`` or ``(T, F)``. Sample ``i`` takes rows ``i .. i+window-1`` as its
    input, shape ``(window, F)`` (``F = 1`` for a 1-D series), and the next ``horizon`` rows
    as its target, for ``n = T - window - horizon + 1`` samples. Targets are
    ``(n, horizon)`` for a 1-D series or when ``target_column`` picks one column, else
    ``(n, horizon, F)``. Both are float64 copies.
    """
    data = np.asarray(series, dtype=np.float64)
    if data.ndim not in (1, 2):
        raise ValueError(f"sliding_windows: series must be (T,) or (T, F), got {data.shape}")
    if window < 1 or horizon < 1:
        raise ValueError(
            f"sliding_windows: window and horizon must be >= 1, got {window} and {horizon}"
        )
    flat = data.ndim == 1
    table = data[:, None] if flat else data
    n = table.shape[0] - window - horizon + 1
    if n < 1:
        raise ValueError(
            f"sliding_windows: a series of {table.shape[0]} rows is too short for "
            f"window={window} and horizon={horizon}"
        )
    if target_column is not None and not -table.shape[1] <= target_column < table.shape[1]:
        raise ValueError(
            f"sliding_windows: target_column {target_column} out of range for "
            f"{table.shape[1]} columns"
        )
    starts = np.arange(n)[:, None]
    inputs = table[starts + np.arange(window)]  # (n, window, F)
    target_rows = starts + window + np.arange(horizon)  # (n, horizon)
    if target_column is not None:
        targets = table[target_rows, target_column]
    elif flat:
        targets = data[target_rows]
    else:
        targets = table[target_rows]
    return inputs, targets


def chronological_split(
    n: int, train: float = 0.7, val: float = 0.15
) -> tuple[slice, slice, slice]:
    """Split ``n`` time-ordered rows into ``(train, val, test)`` slices, in that order.

    No shuffling: the first ``round(train * n)`` rows train, the next ``round(val * n)``
    validate and the rest test, so the model never sees the future during training.
    """
    if n < 0:
        raise ValueError(f"chronological_split: n must be >= 0, got {n}")
    if not (0.0 < train <= 1.0 and 0.0 <= val <= 1.0 and train + val <= 1.0 + 1e-12):
        raise ValueError(
            f"chronological_split: need 0 < train, 0 <= val and train + val <= 1, "
            f"got train={train}, val={val}"
        )
    n_train = round(train * n)
    n_val = min(round(val * n), n - n_train)
    return slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, n)


# ---------------------------------------------------------------- scalers


class _ColumnScaler:
    """Shared parts of the scalers: per-column ``offset`` and ``scale``, x' = (x - offset)/scale.

    ``fit`` takes ``(T,)`` or ``(T, F)`` and must see the training part only.
    ``inverse_transform(y, column=j)`` undoes the scaling of column ``j`` alone, for
    predictions of one column of a multi-column series.
    """

    offset_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    def _set(self, offset: np.ndarray, scale: np.ndarray) -> None:
        scale = np.where(scale > 0, scale, 1.0)  # a constant column maps to offset 0
        self.offset_, self.scale_ = offset, scale

    def _params(self, column: int | None) -> tuple[np.ndarray, np.ndarray]:
        if self.offset_ is None or self.scale_ is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() before transforming")
        if column is None:
            return self.offset_, self.scale_
        return np.atleast_1d(self.offset_)[column], np.atleast_1d(self.scale_)[column]

    def transform(self, array: np.ndarray, column: int | None = None) -> np.ndarray:
        offset, scale = self._params(column)
        return (np.asarray(array, dtype=np.float64) - offset) / scale

    def inverse_transform(self, array: np.ndarray, column: int | None = None) -> np.ndarray:
        offset, scale = self._params(column)
        return np.asarray(array, dtype=np.float64) * scale + offset

    def fit_transform(self, array: np.ndarray) -> np.ndarray:
        return self.fit(array).transform(array)

    @staticmethod
    def _check(name: str, array: np.ndarray) -> np.ndarray:
        data = np.asarray(array, dtype=np.float64)
        if data.ndim not in (1, 2) or data.shape[0] == 0:
            raise ValueError(f"{name}.fit: need a non-empty (T,) or (T, F) array, got {data.shape}")
        return data

    def fit(self, array: np.ndarray):  # pragma: no cover - overridden
        raise NotImplementedError


class Standardizer(_ColumnScaler):
    """Zero mean, unit variance per column: ``mean`` and ``std`` (population) from ``fit``.

    A column with zero spread gets ``std`` 1 so that it maps to zeros rather than NaN.
    """

    def fit(self, array: np.ndarray) -> Standardizer:
        data = self._check("Standardizer", array)
        self._set(data.mean(axis=0), data.std(axis=0))
        return self

    @property
    def mean(self) -> np.ndarray | None:
        return self.offset_

    @property
    def std(self) -> np.ndarray | None:
        return self.scale_


class MinMaxScaler(_ColumnScaler):
    """Map each column's training range ``[min, max]`` onto ``[0, 1]``.

    Values outside the training range (later, higher prices) map outside ``[0, 1]``;
    a constant column maps to zeros.
    """

    def fit(self, array: np.ndarray) -> MinMaxScaler:
        data = self._check("MinMaxScaler", array)
        lo, hi = data.min(axis=0), data.max(axis=0)
        self._set(lo, hi - lo)
        return self

    @property
    def min(self) -> np.ndarray | None:
        return self.offset_

    @property
    def max(self) -> np.ndarray | None:
        return None if self.offset_ is None else self.offset_ + self.scale_


# ---------------------------------------------------------------- price tables

_BOOK_RAW = ["date", "seq", "close", "volume", "turnover"]
_BOOK_PREPROCESSED = ["index", "close", "volume", "turnover"]
_DATE_FORMATS = [
    (re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$"), "%Y-%m-%d"),
    (re.compile(r"^\d{4}/\d{1,2}/\d{1,2}$"), "%Y/%m/%d"),
    (re.compile(r"^\d{1,2}-\d{1,2}-\d{2}$"), "%d-%m-%y"),  # DD-MM-YY: 00..68 -> 20xx
]


def read_price_csv(path: str | os.PathLike, column: str = "close") -> dict[str, np.ndarray | None]:
    """Read a daily price table into ``{"dates": ..., "<column>": float64 array, ...}``.

    ``"dates"`` is a ``datetime64[D]`` array, or ``None`` for a file without dates (the
    book's preprocessed file, kept in file order). Rows are sorted by date ascending.
    Column names are lowercased; see the module docstring for the layouts recognised.
    ``column`` names the column the caller needs: a file without it is refused.

    Raises :class:`DatasetFileError`, naming the file (and line), for an unknown layout,
    a row with the wrong number of fields, a value that is not a number or a date, or a
    file with no data rows.
    """
    name = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetFileError(f"{name}: not UTF-8 text ({exc})") from exc
    lines = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise DatasetFileError(f"{name}: empty file, no data rows")

    first = _fields(lines[0][1])
    if _is_number(first[0]):
        names, rows, trailing_empty = list(_BOOK_PREPROCESSED), lines, False
    elif _date_format(first[0]) is not None:
        names, rows, trailing_empty = list(_BOOK_RAW), lines, True
    else:
        names = [field.lower() for field in first]
        rows, trailing_empty = lines[1:], False
        if any(not field for field in names) or len(set(names)) != len(names):
            raise DatasetFileError(f"{name}, line {lines[0][0]}: bad header {lines[0][1]!r}")
    if not rows:
        raise DatasetFileError(f"{name}: no data rows after the header")
    if trailing_empty and len(first) == len(names):
        trailing_empty = False  # the book's file without its trailing comma
    if column.lower() not in names:
        raise DatasetFileError(f"{name}: no column {column!r} (columns: {', '.join(names)})")

    has_dates = "date" in names
    date_col = names.index("date") if has_dates else -1
    fmt = _date_format(_fields(rows[0][1])[date_col]) if has_dates else None
    if has_dates and fmt is None:
        raise DatasetFileError(
            f"{name}, line {rows[0][0]}: unknown date format {_fields(rows[0][1])[date_col]!r}"
        )
    width = len(names) + (1 if trailing_empty else 0)
    values = np.empty((len(rows), len(names)), dtype=np.float64)
    days = np.empty(len(rows), dtype="datetime64[D]")
    for r, (lineno, line) in enumerate(rows):
        fields = _fields(line)
        if len(fields) != width or (trailing_empty and fields[-1]):
            raise DatasetFileError(
                f"{name}, line {lineno}: expected {width} fields, got {len(fields)}: {line!r}"
            )
        for c, field in enumerate(fields[: len(names)]):
            if c == date_col:
                days[r] = _parse_date(name, lineno, field, fmt)
                values[r, c] = np.nan
                continue
            try:
                values[r, c] = float(field)
            except ValueError:
                raise DatasetFileError(
                    f"{name}, line {lineno}: column {names[c]!r}: not a number: {field!r}"
                ) from None
            if not np.isfinite(values[r, c]):
                raise DatasetFileError(
                    f"{name}, line {lineno}: column {names[c]!r}: not a finite number: {field!r}"
                )

    result: dict[str, np.ndarray | None] = {"dates": None}
    order = np.arange(len(rows))
    if has_dates:
        order = np.argsort(days, kind="stable")
        result["dates"] = days[order]
    for c, col in enumerate(names):
        if c != date_col:
            result[col] = values[order, c]
    return result


def _fields(line: str) -> list[str]:
    return [field.strip() for field in line.split(",")]


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _date_format(field: str) -> str | None:
    for pattern, fmt in _DATE_FORMATS:
        if pattern.match(field):
            return fmt
    return None


def _parse_date(name: str, lineno: int, field: str, fmt: str | None) -> np.datetime64:
    try:
        day: date = datetime.strptime(field, fmt or "").date()
    except ValueError:
        raise DatasetFileError(
            f"{name}, line {lineno}: not a date in the file's format {fmt}: {field!r}"
        ) from None
    return np.datetime64(day, "D")
