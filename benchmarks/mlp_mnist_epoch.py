"""One MNIST epoch of the MLP 784-512-10 (batch 128, SGD + momentum) in xdl and in
PyTorch CPU, in one run, with the same thread count; prints the time ratio and the
achieved GFLOP/s against the measured float32 matrix-product rate.

    python benchmarks/mlp_mnist_epoch.py --data-dir ../shared/datasets --threads 2

Each framework runs ``--repeats`` epochs, alternating, after one warm-up epoch; the
median epoch is reported. PyTorch is only a reference here (``pip install torch``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys

from timing import pin_threads


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("XDL_DATA_DIR",
                                                             "../shared/datasets"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this file")
    return parser.parse_args()


ARGS = parse()
pin_threads(ARGS.threads)

import numpy as np  # noqa: E402  (after pin_threads)
import torch  # noqa: E402
from timing import matmul_gflops, timed  # noqa: E402

import xdl  # noqa: E402
from xdl import data, nn, optim, training  # noqa: E402
from xdl.models import MLP  # noqa: E402

torch.set_num_threads(ARGS.threads)


def load():
    images, labels = data.mnist(root=os.path.join(ARGS.data_dir, "mnist"), split="train",
                                download=False)
    return images.reshape(len(images), -1).astype(np.float32) / 255.0, labels



def flops_per_epoch(samples, sizes):
    """Per sample and layer of m → n: forward 2mn, weight gradient 2mn, input gradient
    2mn except for the first layer (its input is data)."""
    macs = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * (2 * sum(macs) + sum(macs[1:])) * samples


def xdl_epoch_runner(x, y):
    xdl.manual_seed(0)
    model = MLP([784, ARGS.hidden, 10])
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    loader = data.DataLoader(x, y, batch_size=ARGS.batch_size, shuffle=True, seed=0)
    return lambda: training.train_epoch(model, loss_fn, optimizer, loader, metrics=())


def torch_epoch_runner(x, y):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, ARGS.hidden), torch.nn.ReLU(),
                                torch.nn.Linear(ARGS.hidden, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(0)

    def epoch():
        order = torch.randperm(len(yt), generator=generator)
        total = torch.zeros(())
        for start in range(0, len(yt), ARGS.batch_size):
            index = order[start:start + ARGS.batch_size]
            xb, yb = xt[index], yt[index]
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(index)
        return float(total) / len(yt)

    return epoch


def main():
    x, y = load()
    runners = {"xdl": xdl_epoch_runner(x, y), "torch": torch_epoch_runner(x, y)}
    for run in runners.values():
        run()  # warm-up epoch
    times = {name: [] for name in runners}
    for _ in range(ARGS.repeats):
        for name, run in runners.items():
            times[name].append(timed(run))
    median = {name: statistics.median(t) for name, t in times.items()}
    rate = matmul_gflops()
    flops = flops_per_epoch(len(y), [784, ARGS.hidden, 10])
    result = {
        "benchmark": "mlp-mnist-epoch", "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} cores", "threads": ARGS.threads, "batch_size": ARGS.batch_size,
        "model": f"784-{ARGS.hidden}-10", "epoch_seconds": median,
        "all_seconds": times, "ratio_xdl_over_torch": median["xdl"] / median["torch"],
        "gflop_per_epoch": flops / 1e9,
        "achieved_gflops": {name: flops / t / 1e9 for name, t in median.items()},
        "matmul_gflops_float32": rate, "torch": torch.__version__, "numpy": np.__version__,
    }
    print(f"MLP 784-{ARGS.hidden}-10, batch {ARGS.batch_size}, {ARGS.threads} threads, "
          f"one MNIST epoch ({len(y)} samples, {flops / 1e9:.0f} GFLOP)")
    for name in runners:
        print(f"  {name:6s} {median[name]:7.3f} s  {flops / median[name] / 1e9:6.1f} GFLOP/s "
              f"({100 * flops / median[name] / 1e9 / rate:.0f}% of the matmul rate)")
    print(f"  ratio xdl / torch: {result['ratio_xdl_over_torch']:.2f}   "
          f"float32 matmul: {rate:.0f} GFLOP/s")
    if ARGS.json:
        with open(ARGS.json, "w", encoding="utf-8") as stream:
            json.dump(result, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
