"""Backend selection, transfers, scatter-add, random numbers and clear errors."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from conftest import on

import xdl
from xdl import backends, nn


def test_default_backend_and_use_restores():
    before = backends.current()
    with backends.use("numpy") as chosen:
        assert backends.current() is chosen
        assert chosen.name == "numpy"
    assert backends.current() is before


def test_available_lists_numpy_and_array_api_strict():
    names = backends.available()
    assert "numpy" in names and "array_api_strict" in names


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(backends.BackendUnavailable, match="unknown backend 'jax'.*numpy"):
        backends.set_backend("jax")


def test_cupy_not_installed_names_the_pip_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    monkeypatch.setattr(backends, "_cache", {})
    with pytest.raises(backends.BackendUnavailable, match=r"xdl\[cuda12\]"):
        backends.get("cupy")


def test_cupy_without_a_cuda_device_says_so(monkeypatch):
    class NoDevice(Exception):
        pass

    def no_device():
        raise NoDevice("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device))
    fake_compat = types.ModuleType("array_api_compat.cupy")
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "array_api_compat.cupy", fake_compat)
    monkeypatch.setattr(backends, "_cache", {})
    with pytest.raises(backends.BackendUnavailable, match="no CUDA device is visible"):
        backends.get("cupy")


def test_torch_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "array_api_compat.torch", None)
    monkeypatch.setattr(backends, "_cache", {})
    with pytest.raises(backends.BackendUnavailable, match="torch is not installed"):
        backends.get("torch")


def test_round_trip_to_device_and_back(backend, rng):
    host = rng.normal(size=(3, 4))
    x = backends.to_device(host, backend, dtype="float64")
    assert backends.backend_of(x) == backend
    np.testing.assert_array_equal(backends.to_numpy(x), host)
    assert backends.to_device(x, backend) is x  # already there: no copy


def test_transfer_between_backends(backend, rng):
    host = rng.normal(size=(2, 5)).astype(np.float32)
    x = backends.to_device(host, backend)
    back = backends.to_device(x, "numpy")
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, host)


def test_scatter_add_accumulates_repeated_indices(backend, rng):
    target = rng.normal(size=(5, 3))
    indices = np.array([0, 2, 2, 4, 0, 0])
    values = rng.normal(size=(6, 3))
    expected = target.copy()
    np.add.at(expected, indices, values)
    result = backends.scatter_add(on(backend, target), on(backend, indices), on(backend, values))
    np.testing.assert_allclose(backends.to_numpy(result), expected, rtol=1e-12)


def test_portable_scatter_add_matches(backend, rng):
    target, values = rng.normal(size=(4, 2)), rng.normal(size=(5, 2))
    indices = np.array([3, 3, 1, 0, 3])
    expected = target.copy()
    np.add.at(expected, indices, values)
    result = backends.scatter_add_onehot(on(backend, target), on(backend, indices),
                                         on(backend, values))
    np.testing.assert_allclose(backends.to_numpy(result), expected, rtol=1e-12)


def test_same_seed_gives_identical_initial_weights_on_every_backend(backend):
    xdl.manual_seed(7)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2)).to(dtype="float64")
    with backends.use("numpy"):
        xdl.manual_seed(7)
        reference = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2))
        reference.to(dtype="float64")
    for (name, param), (_, ref) in zip(model.named_parameters(), reference.named_parameters()):
        assert backends.backend_of(param.data) == backend
        np.testing.assert_array_equal(backends.to_numpy(param.data),
                                      backends.to_numpy(ref.data), err_msg=name)


def test_random_draws_follow_the_seed_and_the_like_array(backend):
    like = backend.asarray(np.zeros(1), "float32")
    xdl.manual_seed(3)
    first = backends.to_numpy(backends.uniform((1000,), like))
    xdl.manual_seed(3)
    again = backends.to_numpy(backends.uniform((1000,), like))
    normal = backends.to_numpy(backends.normal((4000,), like))
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.float32 and 0 <= first.min() and first.max() < 1
    assert abs(first.mean() - 0.5) < 0.05
    assert abs(normal.mean()) < 0.1 and abs(normal.std() - 1) < 0.1
    assert backends.backend_of(backends.uniform((2,), like)) == backend


def test_module_to_moves_parameters_between_backends(backend):
    with backends.use("numpy"):
        model = nn.Linear(3, 2)
    model.to(backend)
    assert backends.backend_of(model.weight.data) == backend
    assert backends.dtype_name(model.weight.data.dtype) == "float32"
    model.to(dtype="float64")
    assert backends.dtype_name(model.bias.data.dtype) == "float64"
    assert backends.backend_of(model.bias.data) == backend


def _memory_order(x):
    """Axes from outermost to innermost in memory; None for a backend without strides."""
    strides = x.strides if hasattr(x, "strides") else (
        x.stride() if callable(getattr(x, "stride", None)) else None)
    if strides is None:
        return None
    return backends.stride_order(tuple(x.shape), strides)


def test_same_layout_copies_into_the_like_arrays_axis_order(backend, rng):
    from xdl.nn.functional import channels_first

    xp = backend.xp
    like = channels_first(on(backend, rng.normal(size=(2, 4, 5, 3))))   # NHWC in memory
    host = rng.normal(size=(2, 3, 4, 5))
    a = on(backend, host)                                             # NCHW in memory
    out = backends.same_layout(a, like)
    np.testing.assert_array_equal(backends.to_numpy(out), host)
    assert _memory_order(out) == _memory_order(like)
    assert backends.same_layout(like, like) is like
    assert backends.same_layout(a, xp.zeros_like(a)) is a


def test_empty_in_layout_follows_the_like_array(backend, rng):
    from xdl.nn.functional import channels_first

    like = channels_first(on(backend, rng.normal(size=(2, 3, 3, 4))))
    empty = backends.empty_in_layout((2, 4, 5, 6), like, like.dtype)
    assert tuple(empty.shape) == (2, 4, 5, 6) and empty.dtype == like.dtype
    assert _memory_order(empty) == _memory_order(like)


def test_malloc_tuning_respects_the_opt_outs(monkeypatch):
    import platform

    from xdl.backends import numpy as numpy_backend

    monkeypatch.setenv("XDL_MALLOC_TUNING", "0")
    assert numpy_backend.keep_freed_memory() is False
    monkeypatch.delenv("XDL_MALLOC_TUNING")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert numpy_backend.keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert numpy_backend.keep_freed_memory() is on_glibc


_STEP_FAULTS = """
import resource, numpy as np
from xdl.backends import numpy as numpy_backend
numpy_backend.keep_freed_memory()
sizes = [5 << 20, 3 << 20, 6 << 20, 2 << 20]      # float32 temporaries of 8-24 MB
def step():
    arrays = [np.ones(size, np.float32) for size in sizes]
    del arrays
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_malloc_tuning_keeps_a_steps_temporaries_in_the_heap():
    """A fresh process repeating a "step" of 8-24 MB temporaries faults in thousands of
    pages with glibc's defaults and none with the tuning."""
    import os
    import platform
    import subprocess

    if not (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"):
        pytest.skip("the malloc tuning applies to glibc only")
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDL_MALLOC_TUNING", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}

    def faults(**extra):
        out = subprocess.run([sys.executable, "-c", _STEP_FAULTS], env={**env, **extra},
                             check=True, capture_output=True, text=True).stdout
        return int(out.split()[-1])

    tuned, default = faults(), faults(XDL_MALLOC_TUNING="0")
    assert tuned < 100 and default > 10 * max(tuned, 100), (tuned, default)
