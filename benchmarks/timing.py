"""What the benchmarks share: a wall-clock timer and the float32 matrix-product rate."""

from __future__ import annotations

import time

import numpy as np


def timed(fn) -> float:
    """Seconds one call of ``fn`` takes."""
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The best float32 n×n matrix-product rate of NumPy's BLAS here, in GFLOP/s: the
    floor every dense layer's speed is measured against."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    return 2 * n**3 / min(timed(lambda: a @ a) for _ in range(repeats)) / 1e9
