"""NumPy backend: CPU arrays, the default."""

import ctypes
import os
import platform

import array_api_compat.numpy as xp_numpy
import numpy as np

#: glibc hands blocks above 128 kB (adaptively up to 32 MB) straight back to the kernel
#: when freed and trims the heap top above 128 kB, so each large temporary of a training
#: step (an im2col matrix, an activation, a gradient) is built on fresh pages that the
#: kernel must fault in and zero: about 1,000 page faults per LeNet-5 step. With these
#: thresholds freed blocks stay in the heap and are reused (benchmarks/malloc_tuning.py).
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Set glibc's M_MMAP_THRESHOLD (32 MB) and M_TRIM_THRESHOLD (256 MB) for this process.

    Skipped, returning False, where the C library is not glibc, where the user set
    ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` themselves, or with
    ``XDL_MALLOC_TUNING=0``. The cost is that up to 256 MB of freed memory stays with
    the process instead of returning to the system.
    """
    if os.environ.get("XDL_MALLOC_TUNING", "1") == "0":
        return False
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def load(device):
    if device not in (None, "cpu"):
        raise _unavailable(f"numpy runs on the CPU only, got device {device!r}")
    keep_freed_memory()
    return xp_numpy, "cpu"


def _unavailable(message):
    from xdl.backends import BackendUnavailable

    return BackendUnavailable(message)


def owns(x):
    return isinstance(x, (np.ndarray, np.generic))


def device_of(x):
    return "cpu"


def from_numpy(host, device):
    return np.array(host, copy=True)


def to_numpy(x):
    return np.asarray(x)


def scatter_add(target, indices, values):
    np.add.at(target, indices, values)
    return target


def same_layout(a, like):
    """See xdl.backends.same_layout: ``empty_like`` keeps ``like``'s axis order."""
    from xdl.backends import stride_order

    if stride_order(a.shape, a.strides) == stride_order(like.shape, like.strides):
        return a
    out = np.empty_like(like, dtype=a.dtype)
    np.copyto(out, a)
    return out


def empty_in_layout(shape, like, dtype):
    """See xdl.backends.empty_in_layout: allocated in ``like``'s order, then transposed."""
    order = sorted(range(like.ndim), key=lambda axis: -like.strides[axis])
    empty = np.empty([shape[axis] for axis in order], dtype=dtype)
    return empty.transpose([order.index(axis) for axis in range(like.ndim)])


def make_generator(seed, device):
    return np.random.default_rng(seed)


def uniform(gen, shape, dtype, device):
    return gen.random(shape, dtype=dtype)


def normal(gen, shape, dtype, device):
    return gen.standard_normal(shape, dtype=dtype)


def chunk_bytes(device):
    """im2col chunks of about 4 MB stay in cache and keep the matrix products fast."""
    return 4 << 20


def sliding_windows(x, kernel, stride, dilation, out_size, channels_last=True):
    """One copy out of a strided window view (see xdl.backends.sliding_windows)."""
    from xdl.backends import merged_window_shape, window_view_shape

    shape, strides = window_view_shape(tuple(x.shape), x.strides, kernel, stride, dilation,
                                       out_size, channels_last)
    view = np.lib.stride_tricks.as_strided(x, shape, strides, writeable=False)
    return view.reshape(merged_window_shape(shape, channels_last))
