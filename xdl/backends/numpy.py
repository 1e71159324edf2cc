"""NumPy backend: CPU arrays, the default."""

import array_api_compat.numpy as xp_numpy
import numpy as np


def load(device):
    if device not in (None, "cpu"):
        raise _unavailable(f"numpy runs on the CPU only, got device {device!r}")
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
