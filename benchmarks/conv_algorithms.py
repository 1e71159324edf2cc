"""Conv2d's three algorithms, im2col, DFT (in its real and its complex form) and
Toeplitz, on the convolutions of the models here: forward + backward time of each, and
the one ``algorithm="auto"`` picks (``Conv2d.algorithm_for``: ``conv_dft.dft_is_cheaper``,
then ``conv_toeplitz.toeplitz_is_cheaper``; the DFT's form by ``conv_dft.uses_real_form``).

    python benchmarks/conv_algorithms.py --threads 2 --json benchmarks/results/conv-algorithms.json

Inputs are random float32 (MNIST-sized batches), stored as a layer before would store
them: NHWC for 16 channels or more, channel-major for fewer, as an im2col convolution
does (see xdl.nn.conv), and (N, H, C, W) for the Toeplitz path, as a Toeplitz layer
does. The output gradient is stored like the output, as ReLU and pooling hand it back.
One-channel inputs are images, whose gradient no network needs, so their backward is
``backward_params``. The best of ``--repeats`` steps, alternating between the
algorithms, is scaled to 60,000 samples. The allocator is settled first as a dataset
load would (``timing.settle_allocator``).
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
from timing import settle_allocator, timed  # noqa: E402

from xdl.backends import same_layout  # noqa: E402
from xdl.nn import conv_dft  # noqa: E402
from xdl.nn.conv import CHANNEL_MAJOR_BELOW, Conv2d  # noqa: E402

ALGORITHMS = ("im2col", "dft-real", "dft-complex", "toeplitz")

#: conv_dft.REAL_FORM_MAX_CHANNEL_PAIRS values that pin the DFT's form
FORM_PINS = {"dft-real": 10**9, "dft-complex": 0}


def stored_like_a_convolution_output(x, algorithm):
    """x (N, C, H, W) stored as an ``algorithm`` layer would store it (see the module
    docstring); a one-channel image batch stays as it is."""
    c = x.shape[1]
    if c == 1:
        return x
    if algorithm == "toeplitz":
        order = (0, 2, 1, 3)
    else:
        order = (1, 0, 2, 3) if c < CHANNEL_MAJOR_BELOW else (0, 2, 3, 1)
    return np.ascontiguousarray(x.transpose(order)).transpose(np.argsort(order))


def training_step(images, algorithm, out_channels, kernel, padding):
    """One forward + backward of a fresh ``algorithm`` layer, as a function."""
    x = stored_like_a_convolution_output(images, algorithm)
    layer = Conv2d(images.shape[1], out_channels, kernel, padding=padding,
                   algorithm=algorithm.split("-")[0])
    automatic = conv_dft.REAL_FORM_MAX_CHANNEL_PAIRS
    pinned = FORM_PINS.get(algorithm, automatic)
    backward = layer.backward_params if x.shape[1] == 1 else layer.backward

    def pinned_form(run):
        conv_dft.REAL_FORM_MAX_CHANNEL_PAIRS = pinned
        try:
            return run()
        finally:
            conv_dft.REAL_FORM_MAX_CHANNEL_PAIRS = automatic

    y = pinned_form(lambda: layer(x))
    grad = same_layout(np.ones(y.shape, np.float32), y)

    def step():
        pinned_form(lambda: (layer(x), backward(grad)))

    step()
    return step


def main():
    settle_allocator()
    rng = np.random.default_rng(0)
    results = []
    for name, batch, c, o, k, p, side in LAYERS:
        images = rng.standard_normal((batch, c, side, side), dtype=np.float32)
        steps = {a: training_step(images, a, o, k, p) for a in ALGORITHMS}
        best = {a: float("inf") for a in ALGORITHMS}
        for _ in range(ARGS.repeats):  # alternating, so a slow spell hits all three
            for algorithm, step in steps.items():
                best[algorithm] = min(best[algorithm], timed(step))
        times = {a: seconds * 60000 / batch for a, seconds in best.items()}
        auto = Conv2d(c, o, k, padding=p).algorithm_for(images.shape)
        if auto == "dft":
            auto += "-real" if conv_dft.uses_real_form(c, o) else "-complex"
        result = {"layer": name, "batch": batch, "shape": [c, o, k, p, side],
                  "seconds_per_epoch": times, "auto": auto,
                  "fastest": min(times, key=times.get)}
        results.append(result)
        print(f"{name:24s} " + "  ".join(f"{a} {times[a]:6.2f} s" for a in ALGORITHMS)
              + f"  auto: {auto}")
    if ARGS.json:
        with open(ARGS.json, "w", encoding="utf-8") as stream:
            json.dump({"benchmark": "conv-algorithms", "machine": f"{platform.machine()}, "
                       f"{os.cpu_count()} cores", "threads": ARGS.threads,
                       "results": results}, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
