"""Backend-parametrised fixtures: every test that takes ``backend`` runs on each backend.

Without ``XDL_BACKEND`` the tests run on numpy, array_api_strict (default device and
``Device("device1")``, which refuses hidden host round-trips), torch (CPU) and cupy;
a backend that cannot run here is skipped with the reason. ``XDL_BACKEND=NAME``
restricts the run to that backend (how the nox sessions select cupy on a GPU).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import xdl
from xdl import backends

BACKEND_PARAMS = ["numpy", "array_api_strict", "array_api_strict:device1", "torch", "cupy"]


def _selected_params():
    wanted = os.environ.get("XDL_BACKEND")
    if not wanted:
        return BACKEND_PARAMS
    return [p for p in BACKEND_PARAMS if p.split(":")[0] == wanted]


@pytest.fixture(params=_selected_params())
def backend(request):
    """The Backend under test, made current, with the global seed reset to 0."""
    name, _, device = request.param.partition(":")
    reason = backends.unavailable_reason(name)
    if reason is not None:
        pytest.skip(f"backend {name} unavailable: {reason}")
    with backends.use(name, device or None) as chosen:
        xdl.manual_seed(0)
        yield chosen


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def on(backend, host, dtype="float64"):
    """``host`` (NumPy) on ``backend``; floats as ``dtype``, integers as int64."""
    host = np.asarray(host)
    return backend.asarray(host, dtype if host.dtype.kind == "f" else "int64")
