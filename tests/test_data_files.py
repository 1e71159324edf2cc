"""Dataset files: the IDX reader, the MNIST loaders' search and errors, the embedded digits.

Every fixture is written into pytest's ``tmp_path``; nothing here reads a shared data folder
or the network.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
from pathlib import Path

import numpy as np
import pytest

from xdl.data.digits import digits
from xdl.data.idx import DatasetFileError, read_idx, write_idx
from xdl.data.mnist import fashion_mnist, mnist

# the module itself: the package's `mnist` attribute is the loader function
mnist_module = importlib.import_module("xdl.data.mnist")

MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    array = (np.arange(24) - 5).reshape(2, 3, 4).astype(dtype)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype)
    assert back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_idx_layout_is_big_endian(tmp_path):
    path = tmp_path / "a.idx"
    path.write_bytes(b"\x00\x00\x0b\x01" + b"\x00\x00\x00\x02" + b"\x01\x02\xff\xfe")
    np.testing.assert_array_equal(read_idx(path), np.array([0x0102, -2], dtype=np.int16))
    write_idx(path, np.array([0x0102, -2], dtype=np.int16))
    assert path.read_bytes() == b"\x00\x00\x0b\x01\x00\x00\x00\x02\x01\x02\xff\xfe"


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    plain = tmp_path / "plain.idx"
    write_idx(plain, np.arange(6, dtype=np.uint8).reshape(2, 3))
    disguised = tmp_path / "no-gz-suffix"
    disguised.write_bytes(gzip.compress(plain.read_bytes()))
    np.testing.assert_array_equal(read_idx(disguised), read_idx(plain))


def test_idx_wrong_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x00")
    with pytest.raises(DatasetFileError, match="expected magic 0x0000") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert "0x12 0x34" in str(info.value)


def test_idx_empty_file(tmp_path):
    path = tmp_path / "empty.idx"
    path.write_bytes(b"")
    with pytest.raises(DatasetFileError, match="empty file"):
        read_idx(path)


def test_idx_unknown_type_code(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")
    with pytest.raises(DatasetFileError, match="unknown IDX type code 0x07"):
        read_idx(path)


def test_idx_truncated_data(tmp_path):
    path = tmp_path / "short.idx"
    write_idx(path, np.zeros((2, 3), dtype=np.int32))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetFileError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert "expected 24 bytes of data for shape (2, 3), got 19" in message


def test_idx_truncated_header(tmp_path):
    path = tmp_path / "short.idx"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x02")
    with pytest.raises(DatasetFileError, match="truncated IDX header"):
        read_idx(path)


def test_idx_trailing_bytes(tmp_path):
    path = tmp_path / "long.idx.gz"
    write_idx(tmp_path / "long.idx", np.zeros(4, dtype=np.uint8))
    path.write_bytes(gzip.compress((tmp_path / "long.idx").read_bytes() + b"xyz"))
    with pytest.raises(DatasetFileError, match="3 trailing bytes") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "broken.idx.gz"
    write_idx(path, np.zeros((10, 10), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DatasetFileError, match="corrupt gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_write_idx_refuses_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="cannot store dtype int64"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.int64))


# ---------------------------------------------------------------- MNIST loaders


def write_mnist_fixture(folder: Path, n: int = 5, gz: bool = True, seed: int = 0) -> dict:
    """The four standard files with ``n`` random images per split; returns the arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = {}
    for split, (images_name, labels_name) in MNIST_NAMES.items():
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(folder / (images_name + suffix), images)
        write_idx(folder / (labels_name + suffix), labels)
        arrays[split] = (images, labels)
    return arrays


@pytest.fixture
def no_data_dirs(tmp_path, monkeypatch):
    """An empty home and no XDL_DATA_DIR or system folders: nothing to find by default."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDL_DATA_DIR", raising=False)
    monkeypatch.setitem(mnist_module.SYSTEM_DIRS, "mnist", (tmp_path / "system" / "mnist",))
    monkeypatch.setitem(
        mnist_module.SYSTEM_DIRS, "fashion-mnist", (tmp_path / "system" / "fashion-mnist",)
    )
    return home


@pytest.mark.parametrize("loader", [mnist, fashion_mnist])
@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("split", ["train", "test"])
def test_loader_reads_root(tmp_path, no_data_dirs, loader, gz, split):
    expected = write_mnist_fixture(tmp_path / "data", gz=gz)
    images, labels = loader(root=tmp_path / "data", split=split, download=False)
    assert images.dtype == np.uint8 and images.shape == (5, 28, 28)
    assert labels.dtype == np.int64 and labels.shape == (5,)
    np.testing.assert_array_equal(images, expected[split][0])
    np.testing.assert_array_equal(labels, expected[split][1])


def test_loader_rejects_bad_split(tmp_path, no_data_dirs):
    with pytest.raises(ValueError, match="split"):
        mnist(root=tmp_path, split="validation", download=False)


def test_loader_finds_xdl_data_dir(tmp_path, no_data_dirs, monkeypatch):
    expected = write_mnist_fixture(tmp_path / "datasets" / "fashion-mnist")
    monkeypatch.setenv("XDL_DATA_DIR", str(tmp_path / "datasets"))
    images, labels = fashion_mnist(split="test", download=False)
    np.testing.assert_array_equal(images, expected["test"][0])
    np.testing.assert_array_equal(labels, expected["test"][1])
    with pytest.raises(FileNotFoundError):  # the mnist/ subfolder is not there
        mnist(split="test", download=False)


def test_loader_finds_home_cache_and_system_folder(tmp_path, no_data_dirs):
    cached = write_mnist_fixture(no_data_dirs / ".cache" / "xdl" / "mnist", seed=1)
    np.testing.assert_array_equal(mnist(download=False)[0], cached["train"][0])
    system = write_mnist_fixture(tmp_path / "system" / "fashion-mnist", seed=2)
    np.testing.assert_array_equal(fashion_mnist(download=False)[1], system["train"][1])


def test_loader_search_order(tmp_path, no_data_dirs, monkeypatch):
    from_root = write_mnist_fixture(tmp_path / "root", seed=1)
    from_env = write_mnist_fixture(tmp_path / "env" / "mnist", seed=2)
    from_cache = write_mnist_fixture(no_data_dirs / ".cache" / "xdl" / "mnist", seed=3)
    monkeypatch.setenv("XDL_DATA_DIR", str(tmp_path / "env"))
    np.testing.assert_array_equal(mnist(tmp_path / "root")[0], from_root["train"][0])
    np.testing.assert_array_equal(mnist()[0], from_env["train"][0])
    monkeypatch.delenv("XDL_DATA_DIR")
    np.testing.assert_array_equal(mnist()[0], from_cache["train"][0])


def test_offline_error_lists_folders(tmp_path, no_data_dirs, monkeypatch):
    monkeypatch.setenv("XDL_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError) as info:
        fashion_mnist(root=tmp_path / "mine", download=False)
    message = str(info.value)
    for folder in [
        tmp_path / "mine",
        tmp_path / "env" / "fashion-mnist",
        no_data_dirs / ".cache" / "xdl" / "fashion-mnist",
        tmp_path / "system" / "fashion-mnist",
    ]:
        assert str(folder) in message
    for name in ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]:
        assert name in message
    assert "root=" in message and "XDL_DATA_DIR" in message


def test_failed_download_says_where_to_put_files(no_data_dirs, monkeypatch):
    def offline(url):
        raise OSError("network unreachable")

    monkeypatch.setattr(mnist_module, "_fetch", offline)
    with pytest.raises(FileNotFoundError, match="network unreachable") as info:
        mnist()
    assert str(no_data_dirs / ".cache" / "xdl" / "mnist") in str(info.value)


def test_download_checks_md5_then_keeps_file(tmp_path, no_data_dirs, monkeypatch):
    fixture = write_mnist_fixture(tmp_path / "server")
    served = {p.name: p.read_bytes() for p in (tmp_path / "server").iterdir()}
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in served.items()}
    for name, digest in md5.items():
        monkeypatch.setitem(mnist_module._MNIST.md5, name, digest)
    monkeypatch.setattr(mnist_module, "_fetch", lambda url: served[url.rsplit("/", 1)[1]])
    _, labels = mnist(split="test")
    np.testing.assert_array_equal(labels, fixture["test"][1])
    cache = no_data_dirs / ".cache" / "xdl" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]


def test_download_with_bad_checksum_keeps_nothing(tmp_path, no_data_dirs, monkeypatch):
    monkeypatch.setattr(mnist_module, "_fetch", lambda url: b"not the real file")
    with pytest.raises(FileNotFoundError, match="checksum mismatch"):
        mnist(split="test")
    cache = no_data_dirs / ".cache" / "xdl" / "mnist"
    assert not cache.exists() or not any(cache.iterdir())


def test_loader_validates_contents(tmp_path, no_data_dirs):
    folder = tmp_path / "data"
    write_mnist_fixture(folder)
    labels_path = folder / "train-labels-idx1-ubyte.gz"
    write_idx(labels_path, np.array([0, 1, 2, 3, 12], dtype=np.uint8))
    with pytest.raises(DatasetFileError, match="out of range") as info:
        mnist(root=folder, download=False)
    assert str(labels_path) in str(info.value)
    write_idx(labels_path, np.zeros(4, dtype=np.uint8))
    with pytest.raises(DatasetFileError, match="4 labels for the 5 images"):
        mnist(root=folder, download=False)
    images_path = folder / "train-images-idx3-ubyte.gz"
    write_idx(images_path, np.zeros((4, 28, 27), dtype=np.uint8))
    with pytest.raises(DatasetFileError, match=r"shape \(N, 28, 28\)") as info:
        mnist(root=folder, download=False)
    assert str(images_path) in str(info.value)


# ---------------------------------------------------------------- digits


def test_digits_full():
    images, labels = digits()
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    assert labels.dtype == np.int64 and labels.shape == (1797,)
    assert images.min() == 0 and images.max() == 16
    assert set(np.unique(labels)) == set(range(10))


def test_digits_split_is_deterministic_disjoint_and_complete():
    all_images, _ = digits()
    train_x, train_y = digits("train", seed=3)
    test_x, test_y = digits("test", seed=3)
    assert len(test_y) == round(0.2 * 1797) and len(train_y) + len(test_y) == 1797
    np.testing.assert_array_equal(digits("train", seed=3)[0], train_x)
    np.testing.assert_array_equal(digits("test", seed=3)[1], test_y)
    assert not np.array_equal(digits("test", seed=4)[0], test_x)
    # the two splits together are a permutation of all rows
    rows = [r.tobytes() for r in np.concatenate([train_x, test_x])]
    assert sorted(rows) == sorted(r.tobytes() for r in all_images)


def test_digits_test_fraction_and_bad_arguments():
    assert len(digits("test", test_fraction=0.5)[1]) == round(0.5 * 1797)
    with pytest.raises(ValueError, match="split"):
        digits("validation")
    with pytest.raises(ValueError, match="test_fraction"):
        digits("train", test_fraction=1.0)
