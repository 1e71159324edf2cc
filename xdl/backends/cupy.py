"""CuPy backend: CUDA GPUs (``pip install 'xdl[cuda12]'`` or ``'xdl[cuda13]'``)."""


def load(device):
    from xdl.backends import BackendUnavailable

    try:
        import array_api_compat.cupy as xp_cupy
        import cupy
    except ImportError as exc:
        raise BackendUnavailable(
            "cupy is not installed: pip install 'xdl[cuda12]' (CUDA 12) or "
            "'xdl[cuda13]' (CUDA 13)"
        ) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError, missing driver library
        raise BackendUnavailable(
            f"cupy is installed but no CUDA device is visible ({exc}); "
            "use XDL_BACKEND=numpy on this machine"
        ) from exc
    if count == 0:
        raise BackendUnavailable(
            "cupy is installed but no CUDA device is visible; use XDL_BACKEND=numpy"
        )
    index = int(device) if device is not None else 0
    if not 0 <= index < count:
        raise BackendUnavailable(f"CUDA device {index} does not exist ({count} visible)")
    return xp_cupy, cupy.cuda.Device(index)


def owns(x):
    import cupy

    return isinstance(x, cupy.ndarray)


def device_of(x):
    return x.device.id


def from_numpy(host, device):
    import cupy

    with device:
        return cupy.asarray(host)


def to_numpy(x):
    return x.get()


def scatter_add(target, indices, values):
    import cupyx

    cupyx.scatter_add(target, indices, values)
    return target


def strides(x):
    return x.strides


def make_generator(seed, device):
    import cupy

    with device:
        return cupy.random.default_rng(seed)


def uniform(gen, shape, dtype, device):
    with device:
        return gen.random(shape, dtype=dtype)


def normal(gen, shape, dtype, device):
    with device:
        return gen.standard_normal(shape, dtype=dtype)


def chunk_bytes(device):
    return None


def thread_pool(device):
    """None: a GPU has no CPU thread pool to tune."""
    return None


def sliding_windows(x, kernel, stride, dilation, out_size, channels_last=True):
    """One copy out of a strided window view (see xdl.backends.sliding_windows)."""
    import cupy

    from xdl.backends import merged_window_shape, window_view_shape

    shape, strides = window_view_shape(tuple(x.shape), x.strides, kernel, stride, dilation,
                                       out_size, channels_last)
    view = cupy.lib.stride_tricks.as_strided(x, shape, strides)
    return view.reshape(merged_window_shape(shape, channels_last))
