"""Where a CNN's training step goes: forward and backward time of each stage that
``Sequential`` runs (a fused Conv2d → ReLU → MaxPool2d stage or a single layer), the
loss and the optimizer step, per step, on MNIST.

    python benchmarks/cnn_stages.py --data-dir ../shared/datasets --model lenet5 --batch 64

Times are per step in microseconds, summed over ``--steps`` steps after 10 warm-up
steps (``time.perf_counter`` around each call, so a stage's time includes the Python
that runs it); "step" is the whole step, including what no stage accounts for.
``--by-placement`` runs the steps in rounds of 20, probes before each round whether the
machine's two CPUs share a cache (:mod:`placement`), and gives a column per placement.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict

from placement import cross_core_read_ratio, placement
from timing import pin_threads


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("XDL_DATA_DIR",
                                                             "../shared/datasets"))
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--by-placement", action="store_true",
                        help="a column for each placement of the two CPUs")
    return parser.parse_args()


ARGS = parse()
pin_threads(ARGS.threads)

import numpy as np  # noqa: E402  (after pin_threads)

import xdl  # noqa: E402
from xdl import data, nn, optim  # noqa: E402
from xdl.models import create  # noqa: E402
from xdl.nn.conv_relu_pool import ConvReLUPool  # noqa: E402

TIMES: dict[str, float] = defaultdict(float)


def timed(name: str, call):
    """``call`` with its time added to TIMES[name]."""
    def wrapper(*args):
        began = time.perf_counter()
        result = call(*args)
        TIMES[name] += time.perf_counter() - began
        return result
    return wrapper


def stage_name(stage) -> str:
    if isinstance(stage, ConvReLUPool):
        conv = stage.conv
        return (f"fused Conv2d({conv.in_channels}→{conv.out_channels}) → ReLU → MaxPool2d "
                f"[{stage.algorithm}]")
    return repr(stage).split("\n")[0]


def instrument(model) -> None:
    """Wrap the forward and backward of every leaf layer and of the fused stage class."""
    for path, layer in model.named_modules():
        if list(layer.children()):
            continue
        name = f"{path}: {stage_name(layer)}"
        layer.forward = timed(f"{name} forward", layer.forward)
        layer.backward = timed(f"{name} backward", layer.backward)
        layer.backward_params = timed(f"{name} backward", layer.backward_params)
    call, backward, backward_params = (ConvReLUPool.__call__, ConvReLUPool.backward,
                                       ConvReLUPool.backward_params)

    def stage_call(stage, x):
        return timed(f"{stage_name(stage)} forward", call)(stage, x)

    def stage_backward(stage, grad):
        return timed(f"{stage_name(stage)} backward", backward)(stage, grad)

    def stage_backward_params(stage, grad):
        return timed(f"{stage_name(stage)} backward", backward_params)(stage, grad)

    ConvReLUPool.__call__ = stage_call
    ConvReLUPool.backward = stage_backward
    ConvReLUPool.backward_params = stage_backward_params


def main() -> int:
    images, labels = data.mnist(root=os.path.join(ARGS.data_dir, "mnist"), split="train",
                                download=False)
    x = images[:, None, :, :].astype(np.float32) / 255.0
    xdl.manual_seed(0)
    model = create(ARGS.model)
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    instrument(model)
    loss_forward = timed("loss forward", loss_fn.__call__)
    loss_backward = timed("loss backward", loss_fn.backward)
    optimizer_step = timed("optimizer step", optimizer.step)
    order = np.random.default_rng(0).permutation(len(labels))

    def step(i):
        i %= len(labels) // ARGS.batch     # round and round the epoch
        index = order[i * ARGS.batch:(i + 1) * ARGS.batch]
        optimizer.zero_grad()
        loss_forward(model(x[index]), labels[index])
        model.backward_params(loss_backward())
        optimizer_step()

    for i in range(10):
        step(i)
    rounds = [(10 + start, min(20, ARGS.steps - start)) for start in range(0, ARGS.steps, 20)]
    columns: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, int] = defaultdict(int)
    for first, count in rounds:
        column = (f"{placement(cross_core_read_ratio())} CPUs" if ARGS.by_placement
                  else "all")
        TIMES.clear()
        began = time.perf_counter()
        for i in range(first, first + count):
            step(i)
        TIMES["step"] = time.perf_counter() - began
        for name, seconds in TIMES.items():
            columns[column][name] += seconds
        counts[column] += count
    names = list(columns)
    print(f"{ARGS.model}, batch {ARGS.batch}, {ARGS.threads} threads: microseconds per step"
          + "".join(f"; {counts[c]} steps on {c}" for c in names if ARGS.by_placement))
    for name in columns[names[0]]:  # in the order the first step ran them
        print(f"  {name.strip():72s}" + "".join(
            f" {columns[c][name] / counts[c] * 1e6:8.0f}" for c in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
