"""Conv2d's two algorithms, im2col and DFT, on the convolutions of the models here:
forward + backward time of each, the ratio of their estimated costs, and the one
``algorithm="auto"`` picks (``xdl.nn.conv_dft.dft_is_cheaper``).

    python benchmarks/conv_algorithms.py --threads 2 --json benchmarks/results/conv-algorithms.json

Inputs are random float32 (MNIST-sized batches), stored as the layer before would store
them (NHWC for 16 channels or more, channel-major for fewer, as an im2col convolution
does; see xdl.nn.conv); the output gradient is stored like the output, as ReLU and
pooling hand it back. The best of ``--repeats`` steps is scaled to 60,000 samples.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

from timing import pin_threads

# (name, batch, in channels, out channels, kernel, padding, input side)
LAYERS = [
    ("book CNN conv 1", 32, 1, 32, 5, 2, 28),
    ("book CNN conv 2", 32, 32, 64, 5, 2, 14),
    ("LeNet-5 conv 1", 64, 1, 6, 5, 2, 28),
    ("LeNet-5 conv 2", 64, 6, 16, 5, 0, 14),
    ("ResNet 3x3, 16 ch", 64, 16, 16, 3, 1, 28),
    ("ResNet 3x3, 64 ch", 64, 64, 64, 3, 1, 7),
    ("VGG 3x3, 32 -> 64", 64, 32, 64, 3, 1, 14),
    ("AlexNet 5x5, 32 -> 96", 64, 32, 96, 5, 2, 13),
]


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", help="also write the results to this file")
    return parser.parse_args()


ARGS = parse()
pin_threads(ARGS.threads)

import numpy as np  # noqa: E402  (after pin_threads)
from timing import timed  # noqa: E402

from xdl.backends import same_layout  # noqa: E402
from xdl.nn.conv import CHANNEL_MAJOR_BELOW, Conv2d  # noqa: E402
from xdl.nn.conv_dft import dft_is_cheaper, estimated_costs  # noqa: E402


def stored_like_a_convolution_output(x):
    """x (N, C, H, W) stored NHWC, or (C, N, H, W) for few channels (CHANNEL_MAJOR_BELOW);
    a one-channel image batch stays as it is."""
    c = x.shape[1]
    if c == 1:
        return x
    order = (1, 0, 2, 3) if c < CHANNEL_MAJOR_BELOW else (0, 2, 3, 1)
    return np.ascontiguousarray(x.transpose(order)).transpose(np.argsort(order))


def seconds_per_epoch(layer, x, grad, batch) -> float:
    def step():
        layer(x)
        layer.backward(grad)

    step()
    best = min(timed(step) for _ in range(ARGS.repeats))
    return best * 60000 / batch


def main():
    rng = np.random.default_rng(0)
    results = []
    for name, batch, c, o, k, p, side in LAYERS:
        x = stored_like_a_convolution_output(
            rng.standard_normal((batch, c, side, side), dtype=np.float32))
        times = {}
        for algorithm in ("im2col", "dft"):
            layer = Conv2d(c, o, k, padding=p, algorithm=algorithm)
            y = layer(x)
            grad = same_layout(np.ones(y.shape, np.float32), y)
            times[algorithm] = seconds_per_epoch(layer, x, grad, batch)
        window = Conv2d(c, o, k, padding=p).window
        costs = estimated_costs(x.shape, o, window)
        result = {"layer": name, "batch": batch, "shape": [c, o, k, p, side],
                  "seconds_per_epoch": times, "dft_speedup": times["im2col"] / times["dft"],
                  "estimated_cost_ratio": costs["im2col"] / costs["dft"],
                  "auto_takes_dft": dft_is_cheaper(x.shape, o, window, 1)}
        results.append(result)
        print(f"{name:24s} im2col {times['im2col']:6.2f} s  dft {times['dft']:6.2f} s  "
              f"dft speed-up {result['dft_speedup']:4.2f}  estimated cost im2col/dft "
              f"{result['estimated_cost_ratio']:5.2f}  auto: "
              f"{'dft' if result['auto_takes_dft'] else 'im2col'}")
    if ARGS.json:
        with open(ARGS.json, "w", encoding="utf-8") as stream:
            json.dump({"benchmark": "conv-algorithms", "machine": f"{platform.machine()}, "
                       f"{os.cpu_count()} cores", "threads": ARGS.threads,
                       "results": results}, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
