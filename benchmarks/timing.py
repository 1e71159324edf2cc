"""What the benchmarks share: thread pinning, a wall-clock timer and the float32
matrix-product rate. Importing it does not import NumPy, so :func:`pin_threads` can run
before the BLAS library starts its threads."""

from __future__ import annotations

import os
import time

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads(threads: int) -> None:
    """Give every BLAS/OpenMP library ``threads`` threads; call before importing NumPy."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)


def timed(fn) -> float:
    """Seconds one call of ``fn`` takes."""
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def settle_allocator(megabytes: int = 16) -> None:
    """Allocate and free one ``megabytes`` array, as loading a dataset does before
    training. glibc then raises its mmap threshold to that size, so a layer's
    temporaries come from the heap; without it a synthetic benchmark pays a page fault
    per 4 KiB of every temporary above 128 KiB, which no training run does (see the
    page faults per step in cnn_epoch.py)."""
    import numpy as np

    block = np.ones(megabytes << 18, np.float32)
    del block


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The best float32 n×n matrix-product rate of NumPy's BLAS here, in GFLOP/s: the
    floor every dense layer's speed is measured against."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    return 2 * n**3 / min(timed(lambda: a @ a) for _ in range(repeats)) / 1e9
