"""NumPy backend: CPU arrays, the default."""

import ctypes
import os
import platform

import array_api_compat.numpy as xp_numpy
import numpy as np

#: glibc serves blocks from mmap above an adaptive threshold (it settles between 128 kB
#: and 32 MB as blocks are freed) and returns the heap's top to the kernel once more than
#: twice that is free. A large batch's temporaries (im2col matrices, activations and
#: their gradients, tens of MB each) then land on fresh pages every step, which the
#: kernel faults in and zeroes. benchmarks/malloc_tuning.py measures the settings below
#: against glibc's defaults: the book CNN at batch 128 takes 8 page faults a step instead
#: of about 3,200 and 0.85× the time; LeNet-5 and the book CNN at batch 32, which fault
#: little either way, are unchanged.
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Set glibc's M_MMAP_THRESHOLD (32 MB, its maximum) and M_TRIM_THRESHOLD (256 MB)
    for this process, so that freed temporaries stay in the heap for the next step.

    Skipped, returning False, where the C library is not glibc, where the user set
    ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` themselves, or with
    ``XDL_MALLOC_TUNING=0``. The cost: up to 256 MB of freed memory can stay with the
    process instead of going back to the system.
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


def thread_pool(device):
    """The BLAS threads NumPy's matrix products run on, found and limited by threadpoolctl
    (None where it finds no BLAS library)."""
    from threadpoolctl import ThreadpoolController

    from xdl.backends import ThreadPool

    blas = ThreadpoolController().select(user_api="blas")
    if not blas.lib_controllers:
        return None
    maximum = max(library.num_threads for library in blas.lib_controllers)
    return ThreadPool(maximum, lambda count: blas.limit(limits=count))


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


def strides(x):
    return x.strides


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
