"""MNIST epochs of the book CNN (batch 32 and 128) and LeNet-5 (batch 64) in xdl and in
PyTorch CPU with the same threads, in one run: time ratio, FLOPs per epoch, achieved
GFLOP/s against the measured float32 matrix-product rate, and peak memory.

    python benchmarks/cnn_epoch.py --data-dir ../shared/datasets --threads 2

Each (model, batch, framework) runs in its own process, so peak resident memory is its
own (``ru_maxrss`` after the run minus before training). ``--steps N`` times N steps
after a warm-up of 5 and scales to a full epoch (60,000 images); without it a whole
epoch is timed. The median of ``--repeats`` runs is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from timing import pin_threads

CASES = [("book_cnn", 32), ("book_cnn", 128), ("lenet5", 64)]


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("XDL_DATA_DIR",
                                                             "../shared/datasets"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", choices=sorted({m for m, _ in CASES}),
                        help="run only these models' cases (default: all)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--worker", nargs=3, metavar=("FRAMEWORK", "MODEL", "BATCH"),
                        help=argparse.SUPPRESS)
    return parser.parse_args()


ARGS = parse()
pin_threads(ARGS.threads)

import numpy as np  # noqa: E402  (after pin_threads)
from timing import matmul_gflops  # noqa: E402


def conv_flops(c_in, c_out, k, out_side):
    return 2 * c_in * c_out * k * k * out_side * out_side


def flops_per_sample(model):
    """Forward FLOPs of the convolutions and linear layers; training is counted as
    forward + weight gradient + input gradient (none for the first layer)."""
    if model == "book_cnn":
        layers = [conv_flops(1, 32, 5, 28), conv_flops(32, 64, 5, 14), 2 * 3136 * 512,
                  2 * 512 * 10]
    else:
        layers = [conv_flops(1, 6, 5, 28), conv_flops(6, 16, 5, 10), 2 * 400 * 120,
                  2 * 120 * 84, 2 * 84 * 10]
    return 2 * sum(layers) + sum(layers[1:])



def load():
    from xdl import data

    images, labels = data.mnist(root=os.path.join(ARGS.data_dir, "mnist"), split="train",
                                download=False)
    return images[:, None, :, :].astype(np.float32) / 255.0, labels


def xdl_steps(model_name, batch, x, y):
    import xdl
    from xdl import nn, optim
    from xdl.models import create

    xdl.manual_seed(0)
    model = create(model_name, **({"dropout": 0.5} if model_name == "book_cnn" else {}))
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step(xb, yb):
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        model.backward_params(loss_fn.backward())
        optimizer.step()
        return loss

    return step, lambda a: a


def torch_steps(model_name, batch, x, y):
    import torch

    torch.set_num_threads(ARGS.threads)
    torch.manual_seed(0)
    nn = torch.nn
    if model_name == "book_cnn":
        model = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(), nn.Dropout(0.5),
                              nn.Linear(512, 10))
    else:
        model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                              nn.Linear(84, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step(xb, yb):
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step, torch.from_numpy


def worker(framework, model_name, batch):
    """One timed run in this process; prints a JSON line."""
    x, y = load()
    make = xdl_steps if framework == "xdl" else torch_steps
    step, convert = make(model_name, batch, x, y)
    xs, ys = convert(x), convert(y)
    order = np.random.default_rng(0).permutation(len(y))
    batches = [order[i:i + batch] for i in range(0, len(y), batch)]
    steps = len(batches) if ARGS.steps is None else min(ARGS.steps, len(batches) - 5)
    for index in batches[:5]:
        step(xs[index], ys[index])
    before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    for index in batches[5:5 + steps]:
        step(xs[index], ys[index])
    seconds = (time.perf_counter() - began) * len(batches) / steps
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"epoch_seconds": seconds, "peak_rss_mb": after.ru_maxrss / 1024,
                      "training_rss_growth_mb": (after.ru_maxrss - before.ru_maxrss) / 1024,
                      "page_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps}))


def run_worker(framework, model_name, batch):
    command = [sys.executable, os.path.abspath(__file__), "--worker", framework, model_name,
               str(batch), "--data-dir", ARGS.data_dir, "--threads", str(ARGS.threads)]
    if ARGS.steps is not None:
        command += ["--steps", str(ARGS.steps)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    if ARGS.worker:
        framework, model_name, batch = ARGS.worker
        worker(framework, model_name, int(batch))
        return 0
    rate = matmul_gflops()
    results = []
    for model_name, batch in CASES:
        if ARGS.models and model_name not in ARGS.models:
            continue
        runs = {"xdl": [], "torch": []}
        for _ in range(ARGS.repeats):
            for framework in runs:
                runs[framework].append(run_worker(framework, model_name, batch))
        median = {f: statistics.median(r["epoch_seconds"] for r in runs[f]) for f in runs}
        flops = flops_per_sample(model_name) * 60000
        result = {
            "model": model_name, "batch_size": batch, "epoch_seconds": median,
            "ratio_xdl_over_torch": median["xdl"] / median["torch"],
            "gflop_per_epoch": flops / 1e9,
            "achieved_gflops": {f: flops / t / 1e9 for f, t in median.items()},
            "peak_rss_mb": {f: max(r["peak_rss_mb"] for r in runs[f]) for f in runs},
            "runs": runs,
        }
        results.append(result)
        print(f"{model_name} batch {batch}: xdl {median['xdl']:.1f} s, torch "
              f"{median['torch']:.1f} s per epoch, ratio {result['ratio_xdl_over_torch']:.2f}; "
              f"{flops / 1e9:.0f} GFLOP/epoch, xdl {flops / median['xdl'] / 1e9:.0f} GFLOP/s "
              f"({100 * flops / median['xdl'] / 1e9 / rate:.0f}% of the matmul rate), peak "
              f"RSS xdl {result['peak_rss_mb']['xdl']:.0f} MB, torch "
              f"{result['peak_rss_mb']['torch']:.0f} MB")
    summary = {"benchmark": "cnn-epoch", "machine": f"{platform.machine()}, "
               f"{os.cpu_count()} cores", "threads": ARGS.threads, "steps": ARGS.steps,
               "matmul_gflops_float32": rate, "numpy": np.__version__, "results": results}
    print(f"float32 matmul: {rate:.0f} GFLOP/s")
    if ARGS.json:
        with open(ARGS.json, "w", encoding="utf-8") as stream:
            json.dump(summary, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
