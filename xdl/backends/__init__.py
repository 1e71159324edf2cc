"""Array backends: the only package in xdl that names an array library.

A backend is an array-API namespace (``xp``), a device, and the few operations the
standard lacks (host transfers, scatter-add, a random generator). Layer code never
imports numpy, cupy or torch; it takes ``xp`` from its inputs with :func:`namespace`
and calls the helpers here for the rest.

Choose the backend with the ``XDL_BACKEND`` environment variable (read at import,
default ``numpy``; ``XDL_DEVICE`` picks a device), :func:`set_backend` or the
:func:`use` context manager::

    with xdl.backends.use("torch"):
        model = MLP([784, 512, 10])       # parameters are torch tensors

Random numbers follow one seed (:func:`manual_seed`): parameter initialisation draws
on the host from a ``numpy.random.Generator`` and moves the result, so one seed gives
the same initial weights on every backend; per-step randomness (dropout masks, noise)
uses each backend's own generator, seeded from the same seed.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

BACKEND_NAMES = ("numpy", "cupy", "torch", "array_api_strict")
DEFAULT_SEED = 0


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here; the message says why and what to do."""


@dataclass(frozen=True)
class ThreadPool:
    """The threads a CPU backend's BLAS runs on: ``maximum`` as configured when it was
    asked for, ``set(n)`` uses n of them (1 <= n <= maximum)."""

    maximum: int
    set: Callable[[int], None]


@dataclass(frozen=True)
class Backend:
    """One array library on one device.

    ``xp`` is the array-API namespace, ``device`` the device arrays are created on.
    ``impl`` is the backend file (``xdl/backends/<name>.py``) that implements the
    operations the standard lacks.
    """

    name: str
    xp: Any
    device: Any
    impl: Any = field(repr=False, compare=False)

    def asarray(self, host_array, dtype=None):
        """Move a host (NumPy) array onto this backend's device, casting to ``dtype``."""
        host = np.asarray(host_array)
        if dtype is not None:
            host = host.astype(np.dtype(dtype_name(dtype)), copy=False)
        return self.impl.from_numpy(host, self.device)

    @property
    def chunk_bytes(self) -> int | None:
        """How large a temporary (such as a convolution's im2col matrix) may grow before
        the batch is processed in chunks: a cache-sized limit on CPUs, None (no
        chunking) where one large product is fastest, as on GPUs."""
        return self.impl.chunk_bytes(self.device)

    @property
    def thread_pool(self) -> ThreadPool | None:
        """The CPU threads this backend's matrix products run on, for
        :class:`xdl.thread_tuning.ThreadTuner`; None where there is none to tune."""
        return self.impl.thread_pool(self.device)

    def dtype(self, name):
        """The namespace's dtype object for ``"float32"``, ``"int64"``, ...; dtypes pass through."""
        return getattr(self.xp, name) if isinstance(name, str) else name

    def __str__(self):
        return f"{self.name}:{self.device}"


_cache: dict[tuple[str, str], Backend] = {}
_current: Backend | None = None
_seed = DEFAULT_SEED
_step_seed = DEFAULT_SEED
_host_rng = np.random.default_rng(DEFAULT_SEED)
_step_rngs: dict[tuple[str, str], Any] = {}


def _load(name: str, device=None) -> Backend:
    if name not in BACKEND_NAMES:
        raise BackendUnavailable(
            f"unknown backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}"
        )
    key = (name, str(device))
    if key not in _cache:
        impl = importlib.import_module(f"xdl.backends.{name}")
        xp, dev = impl.load(device)
        _cache[key] = Backend(name=name, xp=xp, device=dev, impl=impl)
    return _cache[key]


def get(name: str, device=None) -> Backend:
    """The backend ``name`` on ``device`` (its default device when None).

    Raises :class:`BackendUnavailable` with the reason and the fix when it cannot run.
    """
    return _load(name, device)


def current() -> Backend:
    """The backend new arrays and modules are created on."""
    global _current
    if _current is None:
        _current = get(os.environ.get("XDL_BACKEND", "numpy") or "numpy",
                       os.environ.get("XDL_DEVICE") or None)
    return _current


def set_backend(name, device=None) -> Backend:
    """Make ``name`` (a name or a Backend, on ``device``) the current backend."""
    global _current
    _current = resolve(name, device)
    return _current


@contextlib.contextmanager
def use(name, device=None):
    """``with use("torch"): ...`` runs the block on another backend, then restores."""
    global _current
    previous = current()
    _current = resolve(name, device)
    try:
        yield _current
    finally:
        _current = previous


def unavailable_reason(name: str) -> str | None:
    """None when backend ``name`` can run here, else the reason it cannot."""
    try:
        get(name)
    except BackendUnavailable as exc:
        return str(exc)
    return None


def available() -> list[str]:
    """Names of the backends that can run on this machine."""
    return [name for name in BACKEND_NAMES if unavailable_reason(name) is None]


# A layer step asks for namespaces, backends and dtype names dozens of times; they depend
# only on the array's type (and dtype object), so each is looked up once per type.
_namespace_of_type: dict[type, Any] = {}
_backend_of_type: dict[type, tuple[str, Any]] = {}
_dtype_names: dict[Any, str] = {}


def namespace(*arrays):
    """The array-API namespace of ``arrays`` (all must share one)."""
    kind = type(arrays[0])
    known = _namespace_of_type.get(kind)
    if known is not None and (len(arrays) == 1 or all(type(a) is kind for a in arrays)):
        return known
    xp = array_api_compat.array_namespace(*arrays)
    if all(type(a) is kind for a in arrays):
        _namespace_of_type[kind] = xp
    return xp


def backend_of(x) -> Backend:
    """The backend (and device) that owns array ``x``."""
    known = _backend_of_type.get(type(x))
    if known is not None:
        name, impl = known
        return get(name, impl.device_of(x))
    for name in BACKEND_NAMES:
        impl = _imported_impl(name)
        if impl is not None and impl.owns(x):
            _backend_of_type[type(x)] = (name, impl)
            return get(name, impl.device_of(x))
    raise TypeError(f"not an array of a known backend: {type(x).__name__}")


def _imported_impl(name):
    """The backend file for ``name`` if its library is already imported, else None.

    An array of a library that was never imported cannot exist, so ``backend_of``
    never imports (and pays for) a library it does not need.
    """
    if name not in sys.modules:
        return None
    return importlib.import_module(f"xdl.backends.{name}")


def dtype_name(dtype) -> str:
    """``"float32"`` for any backend's float32 dtype object (or the string itself)."""
    if isinstance(dtype, str):
        return dtype
    key = (type(dtype), dtype)      # never compares dtypes of two libraries with each other
    if key in _dtype_names:
        return _dtype_names[key]
    text = str(dtype)
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64",
                 "uint8", "uint16", "uint32", "uint64", "bool", "complex64", "complex128"):
        if text.endswith(name) or text == name:
            _dtype_names[key] = name
            return name
    raise TypeError(f"unknown dtype {dtype!r}")


def to_numpy(x) -> np.ndarray:
    """A host NumPy copy of ``x`` (any backend's array, or anything NumPy accepts)."""
    if isinstance(x, np.ndarray):
        return x
    try:
        owner = backend_of(x)
    except TypeError:
        return np.asarray(x)
    return owner.impl.to_numpy(x)


def resolve(backend=None, device=None) -> Backend:
    """The Backend meant by ``backend`` (None: current; a name; a Backend) and ``device``."""
    if backend is None:
        return current() if device is None else get(current().name, device)
    if isinstance(backend, Backend):
        return backend if device is None else get(backend.name, device)
    return get(backend, device)


def to_device(x, backend=None, device=None, dtype=None):
    """``x`` on ``backend`` (name or :class:`Backend`; default the current one).

    ``x`` may be a host NumPy array or another backend's array; an array already
    where it should be (and of the right dtype) is returned as it is.
    """
    target = resolve(backend, device)
    try:
        owner = backend_of(x)
    except TypeError:
        owner = None
    if owner is not None and owner == target:
        if dtype is None or dtype_name(x.dtype) == dtype_name(dtype):
            return x
        return target.xp.astype(x, target.dtype(dtype_name(dtype)))
    return target.asarray(to_numpy(x), dtype)


def copy_to(x, like):
    """A copy of ``x`` (any backend, or host) with ``like``'s backend, device and dtype;
    never shares memory with ``x``."""
    moved = to_device(x, backend_of(like), dtype=like.dtype)
    return namespace(moved).asarray(moved, copy=True) if moved is x else moved


def scatter_add(target, indices, values):
    """``target`` with ``values[i]`` added to row ``indices[i]`` (repeats accumulate).

    ``target`` is (n, ...), ``indices`` (m,) integers, ``values`` (m, ...). It may
    update ``target`` in place; use the returned array. Each backend has a fast path
    (``np.add.at``, ``index_add_``, ``cupyx.scatter_add``); the portable fallback is
    a one-hot matrix product.
    """
    return backend_of(target).impl.scatter_add(target, indices, values)


def strides(x) -> tuple[int, ...] | None:
    """The memory strides of ``x`` (any unit), or None on a backend without strides."""
    impl = backend_of(x).impl
    return impl.strides(x) if hasattr(impl, "strides") else None


def stride_order(shape, strides) -> tuple[int, ...]:
    """The axes of length > 1 from the outermost in memory to the innermost."""
    return tuple(axis for axis in _axis_order(strides) if shape[axis] > 1)


def _axis_order(strides) -> list[int]:
    """Every axis, from the outermost in memory to the innermost."""
    return sorted(range(len(strides)), key=lambda axis: -strides[axis])


def empty_in_layout(shape, like, dtype):
    """An uninitialised array of ``shape`` stored in memory in ``like``'s axis order
    (``like`` has as many axes; backends without strides give a plain ``empty``)."""
    xp, like_strides = namespace(like), strides(like)
    if like_strides is None:
        return xp.empty(shape, dtype=dtype, device=like.device)
    order = _axis_order(like_strides)
    empty = xp.empty(tuple(shape[axis] for axis in order), dtype=dtype, device=like.device)
    return xp.permute_dims(empty, tuple(order.index(axis) for axis in range(len(order))))


def same_layout(a, like):
    """``a``, or a copy of it stored in memory in the axis order of ``like`` (same shape).

    On a CPU an element-wise pass over two arrays stored in different axis orders (an
    NCHW-ordered gradient against an NHWC-stored activation) runs several times slower
    than over two alike; layers whose backward combines the incoming gradient with a
    saved array call this first. Backends without strides return ``a``.
    """
    a_strides, like_strides = strides(a), strides(like)
    if a_strides is None or stride_order(a.shape, a_strides) == stride_order(like.shape,
                                                                             like_strides):
        return a
    out = empty_in_layout(tuple(a.shape), like, a.dtype)
    out[...] = a
    return out


def scatter_add_onehot(target, indices, values):
    """Portable scatter-add: ``target + onehot(indices)ᵀ @ values`` in the standard only."""
    xp = namespace(target, values)
    n = target.shape[0]
    rows = xp.arange(n, dtype=indices.dtype, device=indices.device)
    onehot = xp.astype(rows[:, None] == indices[None, :], values.dtype)
    flat = xp.reshape(values, (values.shape[0], -1))
    return target + xp.reshape(onehot @ flat, target.shape)


def sliding_windows(x, kernel, stride, dilation, out_size, channels_last: bool = True):
    """The kh×kw windows of an image batch, copied into one new array.

    channels_last: x (N, H, W, C) → (N, OH, OW, kh·kw, C) with
        out[n, a, b, i·kw + j, c] = x[n, a·sh + i·dh, b·sw + j·dw, c]
    kernel-major:  x (C, N, H, W) → (C, kh·kw, N, OH, OW) with
        out[c, i·kw + j, n, a, b] = x[c, n, a·sh + i·dh, b·sw + j·dw]

    NumPy, PyTorch and CuPy copy once from a strided view of x; the portable
    fallback (:func:`sliding_windows_by_slices`) stacks kh·kw strided slices.
    """
    impl = backend_of(x).impl
    if hasattr(impl, "sliding_windows"):
        return impl.sliding_windows(x, kernel, stride, dilation, out_size, channels_last)
    return sliding_windows_by_slices(x, kernel, stride, dilation, out_size, channels_last)


def sliding_windows_by_slices(x, kernel, stride, dilation, out_size, channels_last=True):
    """Portable :func:`sliding_windows`: one strided slice per kernel position, stacked."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    windows = [(slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
                slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))
               for i in range(kh) for j in range(kw)]
    xp = namespace(x)
    if channels_last:
        return xp.stack([x[:, rows, cols, :] for rows, cols in windows], axis=3)
    return xp.stack([x[:, :, rows, cols] for rows, cols in windows], axis=1)


def window_view_shape(x_shape, x_strides, kernel, stride, dilation, out_size,
                      channels_last: bool = True):
    """Shape and strides of the window view of :func:`sliding_windows` before kh and kw
    merge, for the backends whose library has ``as_strided``:
    (N, OH, OW, kh, kw, C) channels-last, (C, kh, kw, N, OH, OW) kernel-major."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    if channels_last:
        s_n, s_h, s_w, s_c = x_strides
        return ((x_shape[0], oh, ow, kh, kw, x_shape[3]),
                (s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c))
    s_c, s_n, s_h, s_w = x_strides
    return ((x_shape[0], kh, kw, x_shape[1], oh, ow),
            (s_c, s_h * dh, s_w * dw, s_n, s_h * sh, s_w * sw))


def merged_window_shape(view_shape, channels_last: bool = True):
    """The (…, kh·kw, …) shape :func:`sliding_windows` returns for a window view shape."""
    if channels_last:
        return view_shape[:3] + (view_shape[3] * view_shape[4], view_shape[5])
    return (view_shape[0], view_shape[1] * view_shape[2]) + view_shape[3:]


# -- random numbers -----------------------------------------------------------------

def manual_seed(seed: int) -> None:
    """Seed initialisation (host) and every backend's per-step generator."""
    global _seed, _step_seed, _host_rng
    _seed = _step_seed = int(seed)
    _host_rng = np.random.default_rng(_seed)
    _step_rngs.clear()


def seed_epoch(epoch: int) -> None:
    """Restart every backend's per-step generator (dropout masks, sampling noise) from
    (seed, epoch) for epochs after the first, so epoch e draws the same numbers whether
    the run began at epoch 0 or resumed from a checkpoint saved after epoch e − 1."""
    global _step_seed
    _step_seed = _seed if epoch == 0 else \
        int(np.random.SeedSequence([_seed, int(epoch)]).generate_state(1)[0])
    _step_rngs.clear()


def host_rng() -> np.random.Generator:
    """The seeded host generator that parameter initialisation draws from."""
    return _host_rng


def host_generator(seed: int) -> np.random.Generator:
    """A fresh host generator with its own ``seed`` (for draws that must not disturb
    the global stream, such as gradcheck's projections or a loader's shuffles)."""
    return np.random.default_rng(seed)


def _step_rng(backend: Backend):
    key = (backend.name, str(backend.device))
    if key not in _step_rngs:
        _step_rngs[key] = backend.impl.make_generator(_step_seed, backend.device)
    return _step_rngs[key]


def uniform(shape, like):
    """U[0, 1) draws of ``shape`` with ``like``'s backend, device and dtype."""
    backend = backend_of(like)
    return backend.impl.uniform(_step_rng(backend), tuple(shape), like.dtype, backend.device)


def normal(shape, like):
    """N(0, 1) draws of ``shape`` with ``like``'s backend, device and dtype."""
    backend = backend_of(like)
    return backend.impl.normal(_step_rng(backend), tuple(shape), like.dtype, backend.device)


__all__ = [
    "BACKEND_NAMES", "Backend", "BackendUnavailable", "available", "backend_of", "copy_to",
    "current", "dtype_name", "get", "host_generator", "host_rng", "manual_seed", "namespace",
    "normal", "resolve", "scatter_add", "scatter_add_onehot", "seed_epoch", "set_backend",
    "sliding_windows", "sliding_windows_by_slices", "to_device", "to_numpy", "uniform",
    "unavailable_reason", "use", "merged_window_shape", "window_view_shape",
]
