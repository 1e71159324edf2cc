"""The im2col of the book CNN's second convolution two ways on one backend: the
portable path (one strided slice per kernel position, stacked) and the backend's
fast path (one copy out of a strided window view), in one run.

    python benchmarks/im2col_paths.py [--backend numpy|torch] [--batch 6]

This is the measurement behind ``xdl.backends.sliding_windows`` having a fast path.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from timing import timed

from xdl import backends


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--batch", type=int, default=6, help="one chunk of the batch")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    backend = backends.get(args.backend)
    host = np.random.default_rng(0).standard_normal((args.batch, 18, 18, 32))
    x = backend.asarray(host, "float32")  # padded channels-last input, 5×5 kernel
    shape = ((5, 5), (1, 1), (1, 1), (14, 14))
    paths = {"portable (stacked slices)": backends.sliding_windows_by_slices,
             "fast (strided view, one copy)": backends.sliding_windows}
    same = np.array_equal(backends.to_numpy(paths["portable (stacked slices)"](x, *shape)),
                          backends.to_numpy(paths["fast (strided view, one copy)"](x, *shape)))
    times = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, path in paths.items():
            times[name].append(timed(lambda path=path: path(x, *shape)))
    print(f"im2col of ({args.batch}, 32, 14, 14), 5x5 kernel, on {backend}; "
          f"identical results: {same}")
    for name, values in times.items():
        print(f"  {name:32s} {1e3 * statistics.median(values):.3f} ms")


if __name__ == "__main__":
    main()
