"""array_api_strict backend: the standard and nothing else, for testing portability.

Its ``Device("device1")`` refuses to mix with the default device or to convert to
NumPy implicitly, which catches hidden host round-trips in tests.
"""

import numpy as np


def load(device):
    try:
        import array_api_strict as xs
    except ImportError as exc:
        from xdl.backends import BackendUnavailable

        raise BackendUnavailable(
            "array_api_strict is not installed: pip install 'xdl[test]'"
        ) from exc
    if device is None or device == "CPU_DEVICE":
        return xs, xs.Device("CPU_DEVICE")
    return xs, device if isinstance(device, xs.Device) else xs.Device(str(device))


def owns(x):
    from array_api_strict._array_object import Array

    return isinstance(x, Array)


def device_of(x):
    return x.device


def from_numpy(host, device):
    import array_api_strict as xs

    return xs.asarray(np.array(host, copy=True), device=device)


def to_numpy(x):
    import array_api_strict as xs

    return np.asarray(x.to_device(xs.Device("CPU_DEVICE")))


def scatter_add(target, indices, values):
    from xdl.backends import scatter_add_onehot

    return scatter_add_onehot(target, indices, values)


def make_generator(seed, device):
    return np.random.default_rng(seed)


def _draw(host, dtype, device):
    import array_api_strict as xs

    return xs.asarray(host, dtype=dtype, device=device)


def uniform(gen, shape, dtype, device):
    return _draw(gen.random(shape), dtype, device)


def normal(gen, shape, dtype, device):
    return _draw(gen.standard_normal(shape), dtype, device)


def chunk_bytes(device):
    return None


def thread_pool(device):
    """NumPy's BLAS threads: array_api_strict computes with NumPy."""
    from xdl.backends.numpy import thread_pool as numpy_thread_pool

    return numpy_thread_pool(device)
