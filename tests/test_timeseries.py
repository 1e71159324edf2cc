"""Time series: the book's curve, sliding windows, splits, scalers and the price-table reader.

Every fixture is written into pytest's ``tmp_path``; nothing here reads a shared data folder.
"""

from __future__ import annotations

import numpy as np
import pytest

from xdl.data.idx import DatasetFileError
from xdl.data.timeseries import (
    MinMaxScaler,
    Standardizer,
    book_curve,
    chronological_split,
    read_price_csv,
    sliding_windows,
)

# ---------------------------------------------------------------- curve, windows, splits


def test_book_curve_formula_and_seed():
    x, y = book_curve(n=50, step=0.1, noise=0.0)
    np.testing.assert_allclose(x, 0.1 * np.arange(50))
    clean = np.sin(np.pi * x / 3) + np.cos(np.pi * x / 3) + np.sin(np.pi * x / 1.5)
    np.testing.assert_allclose(y, clean)
    _, a = book_curve(n=2000, noise=0.05, seed=3)
    _, b = book_curve(n=2000, noise=0.05, seed=3)
    _, c = book_curve(n=2000, noise=0.05, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    x, _ = book_curve(n=2000)
    clean = np.sin(np.pi * x / 3) + np.cos(np.pi * x / 3) + np.sin(np.pi * x / 1.5)
    assert a.dtype == np.float64 and abs(np.std(a - clean) - 0.05) < 0.005


def test_sliding_windows_1d():
    inputs, targets = sliding_windows(np.arange(10), window=3, horizon=2)
    assert inputs.shape == (6, 3, 1) and targets.shape == (6, 2)
    assert inputs.dtype == np.float64 and targets.dtype == np.float64
    np.testing.assert_array_equal(inputs[0, :, 0], [0, 1, 2])
    np.testing.assert_array_equal(targets[0], [3, 4])
    np.testing.assert_array_equal(inputs[-1, :, 0], [5, 6, 7])
    np.testing.assert_array_equal(targets[-1], [8, 9])


def test_sliding_windows_2d_with_and_without_target_column():
    series = np.arange(20.0).reshape(10, 2)  # row t = [2t, 2t+1]
    inputs, targets = sliding_windows(series, window=4)
    assert inputs.shape == (6, 4, 2) and targets.shape == (6, 1, 2)
    np.testing.assert_array_equal(inputs[1], series[1:5])
    np.testing.assert_array_equal(targets[1, 0], series[5])
    inputs, targets = sliding_windows(series, window=4, horizon=3, target_column=1)
    assert inputs.shape == (4, 4, 2) and targets.shape == (4, 3)
    np.testing.assert_array_equal(targets[0], series[4:7, 1])


def test_sliding_windows_errors():
    with pytest.raises(ValueError, match="too short"):
        sliding_windows(np.arange(3), window=3)
    with pytest.raises(ValueError, match=">= 1"):
        sliding_windows(np.arange(10), window=0)
    with pytest.raises(ValueError, match="target_column"):
        sliding_windows(np.zeros((10, 2)), window=2, target_column=2)
    with pytest.raises(ValueError, match=r"\(T,\)"):
        sliding_windows(np.zeros((4, 2, 2)), window=2)


def test_chronological_split():
    train, val, test = chronological_split(100)
    assert (train, val, test) == (slice(0, 70), slice(70, 85), slice(85, 100))
    train, val, test = chronological_split(10, train=0.8, val=0.0)
    assert (train, val, test) == (slice(0, 8), slice(8, 8), slice(8, 10))
    rows = np.arange(37)
    parts = [rows[s] for s in chronological_split(37)]
    np.testing.assert_array_equal(np.concatenate(parts), rows)
    with pytest.raises(ValueError):
        chronological_split(10, train=0.9, val=0.2)
    with pytest.raises(ValueError):
        chronological_split(10, train=0.0)


# ---------------------------------------------------------------- scalers


def test_standardizer_fits_training_part_only():
    data = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0], [100.0, 50.0]])
    scaler = Standardizer().fit(data[:3])
    np.testing.assert_allclose(scaler.mean, [3.0, 10.0])
    np.testing.assert_allclose(scaler.std, [np.std([1, 3, 5]), 1.0])  # constant column -> 1
    out = scaler.transform(data)
    np.testing.assert_allclose(out[:3].mean(axis=0), [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(scaler.inverse_transform(out), data)
    np.testing.assert_allclose(scaler.inverse_transform(out[:, 0], column=0), data[:, 0])
    np.testing.assert_allclose(Standardizer().fit_transform(data[:3]), out[:3])


def test_minmax_scaler():
    data = np.array([2.0, 4.0, 6.0, 10.0])
    scaler = MinMaxScaler().fit(data[:3])
    assert scaler.min == 2.0 and scaler.max == 6.0
    np.testing.assert_allclose(scaler.transform(data), [0.0, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(data)), data)


def test_scaler_errors():
    with pytest.raises(RuntimeError, match="fit"):
        Standardizer().transform(np.zeros(3))
    with pytest.raises(ValueError, match="non-empty"):
        MinMaxScaler().fit(np.zeros((0, 2)))


# ---------------------------------------------------------------- price tables


def _write(path, text, bom=False):
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_read_ohlcv_with_bom_and_crlf(tmp_path):
    path = _write(
        tmp_path / "hs300.csv",
        "date,open,high,low,close,volume\r\n"
        "2006-01-09,971.0,976.2,966.0,975.25,2432955200\r\n"
        "2006-01-06,961.9,975.6,956.0,970.03,3028636800\r\n",
        bom=True,
    )
    table = read_price_csv(path)
    assert list(table) == ["dates", "open", "high", "low", "close", "volume"]
    assert table["dates"].dtype == np.dtype("datetime64[D]")
    np.testing.assert_array_equal(
        table["dates"], np.array(["2006-01-06", "2006-01-09"], dtype="datetime64[D]")
    )  # sorted ascending
    np.testing.assert_array_equal(table["close"], [970.03, 975.25])
    np.testing.assert_array_equal(table["volume"], [3028636800, 2432955200])
    assert table["close"].dtype == np.float64


def test_read_sp500_dd_mm_yy(tmp_path):
    path = _write(
        tmp_path / "sp500.csv",
        "Date,Open,High,Low,Close,Volume\n"
        "31-12-99,1,2,0.5,1.5,100\n"
        "03-01-00,1469.25,1478,1438.36,1455.22,931800000\n"
        "31-08-18,2898.37,2906.32,2891.73,2901.52,2880260000\n",
    )
    table = read_price_csv(path)
    np.testing.assert_array_equal(
        table["dates"],
        np.array(["1999-12-31", "2000-01-03", "2018-08-31"], dtype="datetime64[D]"),
    )
    np.testing.assert_array_equal(table["close"], [1.5, 1455.22, 2901.52])


def test_read_book_raw_file(tmp_path):
    path = _write(
        tmp_path / "raw.csv",
        "2005-01-04,1 ,982.794,741286894,4431977400,\r\n"
        "2005-01-05,2 ,992.564,711910898,4529208200,\r\n"
        "2019-03-04,3441 ,3794.104,32349012736,3.76397E+11,\r\n",
    )
    table = read_price_csv(path)
    assert list(table) == ["dates", "seq", "close", "volume", "turnover"]
    np.testing.assert_array_equal(table["seq"], [1, 2, 3441])
    np.testing.assert_array_equal(table["close"], [982.794, 992.564, 3794.104])
    assert table["turnover"][-1] == 3.76397e11
    assert table["dates"][-1] == np.datetime64("2019-03-04")


def test_read_book_preprocessed_file(tmp_path):
    path = _write(
        tmp_path / "pre.csv",
        "1  , 982.794 , 74.1287 , 44.3198\n2  , 992.564 , 71.1911 , 45.2921\n"
        "3457  , 3700.440 , 1730, 1965.47809280",
    )
    table = read_price_csv(path)
    assert table["dates"] is None
    assert list(table) == ["dates", "index", "close", "volume", "turnover"]
    np.testing.assert_array_equal(table["close"], [982.794, 992.564, 3700.44])
    np.testing.assert_array_equal(table["index"], [1, 2, 3457])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty file"),
        ("date,open,close\n", "no data rows"),
        ("date,open,close\n2006-01-06,1.0,abc\n", r"line 2: column 'close': not a number"),
        ("date,open,close\n2006-01-06,1.0,2.0\n2006-01-07,1.0\n", "line 3: expected 3 fields"),
        ("date,open,close\n2006-13-06,1.0,2.0\n", "line 2: not a date"),
        ("date,open,close\nJan 6,1.0,2.0\n", "unknown date format"),
        ("date,open,volume\n2006-01-06,1.0,2.0\n", "no column 'close'"),
        (
            "2005-01-04,1 ,982.794,7412,4431,\n2005-01-05,2 ,x,7119,4529,\n",
            "line 2: column 'close'",
        ),
        ("1,2.0,3.0,nan\n", "not a finite number"),
    ],
)
def test_read_price_csv_errors(tmp_path, text, match):
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(DatasetFileError, match=match) as info:
        read_price_csv(path)
    assert "bad.csv" in str(info.value)


def test_read_price_csv_other_column(tmp_path):
    path = _write(tmp_path / "a.csv", "Date,Open\n2020-01-02,5\n")
    np.testing.assert_array_equal(read_price_csv(path, column="Open")["open"], [5.0])
