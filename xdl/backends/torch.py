"""PyTorch backend: xdl's own layers on torch tensors (no autograd is used)."""



def load(device):
    try:
        import array_api_compat.torch as xp_torch
        import torch
    except ImportError as exc:
        from xdl.backends import BackendUnavailable

        raise BackendUnavailable(
            "torch is not installed: pip install torch (CPU: pip install torch "
            "--index-url https://download.pytorch.org/whl/cpu)"
        ) from exc
    dev = torch.device(device if device is not None else "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        from xdl.backends import BackendUnavailable

        raise BackendUnavailable("torch is installed but no CUDA device is visible")
    return xp_torch, dev


def owns(x):
    import torch

    return isinstance(x, torch.Tensor)


def device_of(x):
    return x.device


def from_numpy(host, device):
    import torch

    return torch.tensor(host, device=device)


def to_numpy(x):
    return x.detach().cpu().numpy().copy()


def scatter_add(target, indices, values):
    return target.index_add_(0, indices, values)


def strides(x):
    return x.stride()


def make_generator(seed, device):
    import torch

    return torch.Generator(device=device).manual_seed(seed)


def uniform(gen, shape, dtype, device):
    import torch

    return torch.rand(shape, generator=gen, dtype=dtype, device=device)


def normal(gen, shape, dtype, device):
    import torch

    return torch.randn(shape, generator=gen, dtype=dtype, device=device)


def thread_pool(device):
    """None: PyTorch runs its element-wise kernels on its own threads too, which the
    user sets with torch.set_num_threads."""
    return None


def chunk_bytes(device):
    """Cache-sized chunks on the CPU; one large product on a GPU."""
    return 4 << 20 if device.type == "cpu" else None


def sliding_windows(x, kernel, stride, dilation, out_size, channels_last=True):
    """One copy out of a strided window view (see xdl.backends.sliding_windows)."""
    from xdl.backends import merged_window_shape, window_view_shape

    shape, strides = window_view_shape(tuple(x.shape), x.stride(), kernel, stride, dilation,
                                       out_size, channels_last)
    view = x.as_strided(shape, strides, x.storage_offset())
    return view.reshape(merged_window_shape(shape, channels_last))
