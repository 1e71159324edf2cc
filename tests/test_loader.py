"""DataLoader: batching, seeded shuffling per epoch, dtypes, backend and device."""

from __future__ import annotations

import numpy as np
import pytest

from xdl import backends
from xdl.data import DataLoader

N = 10


def _dataset(n=N):
    """Rows of x encode their sample index, so pairing with y can be checked."""
    index = np.arange(n)
    x = np.stack([index, index * 10.0, -index], axis=1).astype(np.float64)
    return x, index.astype(np.int64)


def _epoch(loader):
    return [tuple(backends.to_numpy(a) for a in batch) for batch in loader]


def _labels(batches):
    return np.concatenate([y for _, y in batches])


@pytest.mark.parametrize("drop_last, sizes", [(False, [4, 4, 2]), (True, [4, 4])])
@pytest.mark.parametrize("shuffle", [False, True])
def test_batch_count_and_sizes(backend, drop_last, sizes, shuffle):
    x, y = _dataset()
    loader = DataLoader(x, y, batch_size=4, drop_last=drop_last, shuffle=shuffle)
    assert len(loader) == len(sizes)
    batches = _epoch(loader)
    assert [len(bx) for bx, _ in batches] == sizes
    assert [len(by) for _, by in batches] == sizes
    assert all(bx.shape[1:] == (3,) for bx, _ in batches)


def test_exact_division_and_batch_larger_than_data():
    with backends.use("numpy"):  # host batches, whatever XDL_BACKEND says
        _check_exact_division_and_large_batches()


def _check_exact_division_and_large_batches():
    x, y = _dataset(8)
    assert [len(b[0]) for b in DataLoader(x, y, batch_size=4)] == [4, 4]
    assert len(DataLoader(x, y, batch_size=4, drop_last=True)) == 2
    assert [len(b[0]) for b in DataLoader(x, y, batch_size=20)] == [8]
    assert len(DataLoader(x, y, batch_size=20, drop_last=True)) == 0
    assert list(DataLoader(x, y, batch_size=20, drop_last=True)) == []


def test_without_shuffle_order_is_the_data_order(backend):
    x, y = _dataset()
    batches = _epoch(DataLoader(x, y, batch_size=3))
    np.testing.assert_array_equal(_labels(batches), y)
    np.testing.assert_array_equal(np.concatenate([bx for bx, _ in batches]), x)


@pytest.mark.parametrize("epoch", [0, 1, 5])
def test_shuffle_sees_every_sample_once_and_keeps_pairs(backend, epoch):
    x, y = _dataset(23)
    loader = DataLoader(x, y, batch_size=5, shuffle=True, seed=3)
    loader.set_epoch(epoch)
    batches = _epoch(loader)
    labels = _labels(batches)
    np.testing.assert_array_equal(np.sort(labels), y)
    assert not np.array_equal(labels, y)  # actually shuffled
    for bx, by in batches:
        np.testing.assert_array_equal(bx, x[by].astype(np.float32))


def test_shuffle_order_depends_only_on_seed_and_epoch(backend):
    x, y = _dataset(50)

    def order(seed, epoch, loader=None):
        loader = loader or DataLoader(x, y, batch_size=8, shuffle=True, seed=seed)
        loader.set_epoch(epoch)
        return _labels(_epoch(loader))

    loader = DataLoader(x, y, batch_size=8, shuffle=True, seed=11)
    first = order(11, 2, loader)
    # the same (seed, epoch) again, on the same loader after other epochs, or a new one
    order(11, 0, loader)
    np.testing.assert_array_equal(order(11, 2, loader), first)
    np.testing.assert_array_equal(order(11, 2), first)
    # another epoch or another seed gives another order
    assert not np.array_equal(order(11, 3), first)
    assert not np.array_equal(order(12, 2), first)
    # the batch size does not change the order
    other_batches = DataLoader(x, y, batch_size=7, shuffle=True, seed=11)
    np.testing.assert_array_equal(order(11, 2, other_batches), first)


def test_iterating_without_set_epoch_advances_the_epoch(backend):
    x, y = _dataset(30)
    loader = DataLoader(x, y, batch_size=8, shuffle=True, seed=4)
    epochs = [_labels(_epoch(loader)) for _ in range(3)]
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[1], epochs[2])
    for e, labels in enumerate(epochs):
        reference = DataLoader(x, y, batch_size=8, shuffle=True, seed=4)
        reference.set_epoch(e)
        np.testing.assert_array_equal(_labels(_epoch(reference)), labels)


def test_dtypes_default_conversion(backend):
    rng = np.random.default_rng(0)
    x64 = rng.normal(size=(6, 2))
    images = rng.integers(0, 256, size=(6, 1, 2, 2)).astype(np.uint8)
    labels32 = np.arange(6, dtype=np.int32)
    mask = np.arange(6) % 2 == 0
    loader = DataLoader(x64, images, labels32, mask, batch_size=4)
    bx, bimg, by, bmask = next(iter(loader))
    assert backends.dtype_name(bx.dtype) == "float32"
    assert backends.dtype_name(bimg.dtype) == "float32"
    assert backends.dtype_name(by.dtype) == "int64"
    assert backends.dtype_name(bmask.dtype) == "bool"
    np.testing.assert_array_equal(backends.to_numpy(bx), x64[:4].astype(np.float32))
    # uint8 images are converted as they are (not scaled)
    np.testing.assert_array_equal(backends.to_numpy(bimg), images[:4].astype(np.float32))
    np.testing.assert_array_equal(backends.to_numpy(by), np.arange(4))
    np.testing.assert_array_equal(backends.to_numpy(bmask), mask[:4])


def test_dtype_option(backend):
    x, y = _dataset()
    bx, by = next(iter(DataLoader(x, y, batch_size=4, dtype="float64")))
    assert backends.dtype_name(bx.dtype) == "float64"
    assert backends.dtype_name(by.dtype) == "int64"
    images = np.full((4, 3), 200, dtype=np.uint8)
    (bimg,) = next(iter(DataLoader(images, batch_size=4, dtype="float64")))
    assert backends.dtype_name(bimg.dtype) == "float64"
    np.testing.assert_array_equal(backends.to_numpy(bimg), np.full((4, 3), 200.0))


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_live_on_the_current_backend_and_device(backend, shuffle):
    x, y = _dataset()
    for batch in DataLoader(x, y, batch_size=4, shuffle=shuffle):
        for array in batch:
            assert backends.backend_of(array) == backend
            if backend.name == "array_api_strict":
                assert array.device == backend.device


@pytest.mark.parametrize("shuffle", [False, True])
def test_backend_and_device_arguments(shuffle):
    reason = backends.unavailable_reason("array_api_strict")
    if reason is not None:
        pytest.skip(reason)
    import array_api_strict as xs

    x, y = _dataset()
    with backends.use("numpy"):
        loader = DataLoader(x, y, batch_size=4, shuffle=shuffle, backend="array_api_strict",
                            device="device1")
    batches = list(loader)
    assert len(batches) == 3
    for batch in batches:
        for array in batch:
            assert isinstance(array, xs._array_object.Array)
            assert array.device == xs.Device("device1")
    numpy_batches = list(DataLoader(x, y, batch_size=4, backend="numpy"))
    assert all(isinstance(a, np.ndarray) for batch in numpy_batches for a in batch)


@pytest.mark.parametrize("name", ["torch", "array_api_strict"])
def test_backend_by_name(name):
    reason = backends.unavailable_reason(name)
    if reason is not None:
        pytest.skip(reason)
    x, y = _dataset()
    with backends.use("numpy"):
        bx, by = next(iter(DataLoader(x, y, batch_size=4, backend=name)))
    assert backends.backend_of(bx).name == name
    assert backends.backend_of(by).name == name
    np.testing.assert_array_equal(backends.to_numpy(by), [0, 1, 2, 3])


def test_invalid_arguments_raise():
    x, y = _dataset()
    with pytest.raises(ValueError, match="same length"):
        DataLoader(x, y[:-1], batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(x, y, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(x, y, batch_size=-3)
    with pytest.raises(ValueError):
        DataLoader(batch_size=2)
    with pytest.raises(TypeError):
        DataLoader(np.array(["a", "b"]), batch_size=1)
