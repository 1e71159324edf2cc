"""Test sessions, one per backend, plus lint: ``nox -s tests-numpy``, ``nox -s lint``.

Each test session runs the whole suite with ``XDL_BACKEND`` set, so the backend-
parametrised tests run on that backend only. ``tests-cupy`` needs a CUDA GPU (the
tests skip with the reason otherwise); pick the extra with ``XDL_CUDA=cuda12|cuda13``.
"""

import os

import nox

nox.options.sessions = ["tests-numpy", "tests-array_api_strict", "tests-torch", "lint"]
TORCH = "torch==2.13.0"  # the CPU build used as a test backend and benchmark reference


def _tests(session, backend, *extra_installs):
    session.install("-e", ".[test,plot]", *extra_installs)
    session.run("python", "-m", "pytest", "-q", *session.posargs,
                env={"XDL_BACKEND": backend})


@nox.session(name="tests-numpy")
def tests_numpy(session):
    _tests(session, "numpy")


@nox.session(name="tests-array_api_strict")
def tests_array_api_strict(session):
    _tests(session, "array_api_strict")


@nox.session(name="tests-torch")
def tests_torch(session):
    _tests(session, "torch", TORCH)


@nox.session(name="tests-cupy")
def tests_cupy(session):
    _tests(session, "cupy", f".[{os.environ.get('XDL_CUDA', 'cuda12')}]")


@nox.session
def lint(session):
    session.install("ruff")
    session.run("ruff", "check", "xdl", "tests", "benchmarks", "noxfile.py")
