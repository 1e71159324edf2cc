"""Conv2d → ReLU → MaxPool2d(2): an im2col convolution and the two layers run one by one,
against the fused stage on the Toeplitz path (xdl.nn.conv_relu_pool), forward +
backward, on convolutions with few input channels; and whether ``algorithm="auto"``
fuses them on the Toeplitz path (``conv_relu_pool.fused_toeplitz_is_cheaper``).

    python benchmarks/fused_stage.py --threads 2 --json benchmarks/results/fused-stage.json

"passes" is what the rule needs to take the fused stage: the fused estimate's excess
over im2col's, in passes over the convolution's output (FUSION_SAVED_PASSES is the
threshold). Inputs are random float32; a first layer (one or three channels) gets
``backward_params`` and NCHW images, a later one ``backward`` and an NHWC-stored input,
as a layer before would leave it. The two run in turn, ``--rounds`` times 5 steps each,
and the median is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from functools import partial

from timing import pin_threads

# (name, batch, in channels, out channels, kernel, padding, input side)
LAYERS = [
    ("book CNN conv 1", 32, 1, 32, 5, 2, 28),
    ("book CNN conv 1, batch 128", 128, 1, 32, 5, 2, 28),
    ("1 -> 16, 3x3", 64, 1, 16, 3, 1, 28),
    ("3 -> 32, 3x3", 64, 3, 32, 3, 1, 32),
    ("3 -> 16, 5x5", 64, 3, 16, 5, 2, 32),
    ("6 -> 32, 3x3", 64, 6, 32, 3, 1, 28),
    ("8 -> 32, 3x3", 64, 8, 32, 3, 1, 28),
    ("12 -> 32, 3x3", 64, 12, 32, 3, 1, 28),
    ("16 -> 32, 3x3", 64, 16, 32, 3, 1, 28),
]


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", help="also write the results to this file")
    return parser.parse_args()


ARGS = parse()
pin_threads(ARGS.threads)

import numpy as np  # noqa: E402  (after pin_threads)
from timing import settle_allocator, timed  # noqa: E402

from xdl.nn import Conv2d, MaxPool2d, ReLU, Sequential  # noqa: E402
from xdl.nn.conv_dft import IM2COL_COPY_COST  # noqa: E402
from xdl.nn.conv_relu_pool import ConvReLUPool, fused_toeplitz_is_cheaper  # noqa: E402
from xdl.nn.conv_toeplitz import estimated_costs  # noqa: E402

STEPS_PER_ROUND = 5


def steps(model, x, grad, first_layer: bool):
    """STEPS_PER_ROUND forward and backward passes."""
    for _ in range(STEPS_PER_ROUND):
        model(x)
        if first_layer:
            model.backward_params(grad)
        else:
            model.backward(grad)


def measure(batch, c, o, k, padding, side) -> dict:
    rng = np.random.default_rng(0)
    first_layer = c <= 3
    x = rng.standard_normal((batch, side, side, c), dtype=np.float32).transpose(0, 3, 1, 2)
    if first_layer:
        x = np.ascontiguousarray(x)
    models = {name: Sequential(Conv2d(c, o, k, padding=padding, algorithm=name), ReLU(),
                               MaxPool2d(2)) for name in ("im2col", "toeplitz")}
    grads = {name: np.ones(tuple(model(x).shape), np.float32)
             for name, model in models.items()}
    assert isinstance(models["toeplitz"].saved[0][0], ConvReLUPool)
    times = {name: [] for name in models}
    for _ in range(ARGS.rounds):
        for name, model in models.items():
            times[name].append(timed(partial(steps, model, x, grads[name], first_layer))
                               / STEPS_PER_ROUND)
    median = {name: statistics.median(t) for name, t in times.items()}
    conv = models["im2col"][0]
    costs = estimated_costs(x.shape, o, conv.window, block_multiple=2)
    auto = Conv2d(c, o, k, padding=padding)
    return {
        "seconds_per_step": median,
        "fused_over_one_by_one": median["toeplitz"] / median["im2col"],
        "passes_needed": (costs["toeplitz-pooled"] - costs["im2col"]) / (o * IM2COL_COPY_COST),
        "auto_fuses_on_toeplitz": fused_toeplitz_is_cheaper(x.shape, auto, (2, 2)),
    }


def main() -> int:
    settle_allocator()
    results = []
    for name, batch, c, o, k, padding, side in LAYERS:
        result = {"layer": name, "batch": batch, "shape": [c, o, k, padding, side],
                  **measure(batch, c, o, k, padding, side)}
        results.append(result)
        t = result["seconds_per_step"]
        print(f"{name:28s} batch {batch:3d}: one by one {t['im2col'] * 1e6:7.0f} µs, fused "
              f"{t['toeplitz'] * 1e6:7.0f} µs, ratio {result['fused_over_one_by_one']:.2f}; "
              f"passes needed {result['passes_needed']:4.1f}, auto fuses: "
              f"{result['auto_fuses_on_toeplitz']}", flush=True)
    if ARGS.json:
        with open(ARGS.json, "w", encoding="utf-8") as stream:
            json.dump({"benchmark": "fused-stage", "threads": ARGS.threads,
                       "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                       "results": results}, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
