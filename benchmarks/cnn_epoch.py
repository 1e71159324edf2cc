"""MNIST epochs of the book CNN (batch 32 and 128) and LeNet-5 (batch 64) in xdl and in
PyTorch CPU with the same threads, in one run: time ratio, FLOPs per epoch, achieved
GFLOP/s against the measured float32 matrix-product rate, and peak memory.

    python benchmarks/cnn_epoch.py --data-dir ../shared/datasets --threads 2

Each framework trains in a process of its own (so peak resident memory is its own:
``ru_maxrss`` after the run, and its growth during training), and the two processes
take turns, ``--chunk`` steps at a time, the one going first alternating: a slow spell
of this shared, noisy machine falls on both alike, so the ratio holds still where
absolute times do not. Before each turn the parent waits ``--gap`` seconds, longer than
an idle OpenBLAS worker keeps spinning on a core after a product (about 0.1 s here;
PyTorch's OpenMP threads spin about 8 ms): with a shorter pause xdl's spinning worker
would slow PyTorch's turn and flatter xdl. ``--steps N`` times N steps per epoch after
a warm-up of 5 and scales to a full epoch (60,000 images); without it whole epochs are
timed. ``--repeats`` such epochs are run; the median epoch is reported, and the
quartiles of the per-turn time ratios show the spread. Before each turn the parent
also measures how far apart the machine has placed its two CPUs
(:mod:`placement`), and the per-turn ratios are summarised for each placement apart.

xdl's steps run under the :class:`xdl.thread_tuning.ThreadTuner` that ``fit`` uses,
which times steps and runs each on all ``--threads`` BLAS threads, half or one,
whichever is faster at the time; its closing figures count the steps at each. With
``XDL_TUNE_THREADS=0`` xdl runs every step on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import time

from interleave import epoch_worker, quartiles, run_pair
from placement import cross_core_read_ratio, placement
from timing import pin_threads

CASES = [("book_cnn", 32), ("book_cnn", 128), ("lenet5", 64)]
WARM_UP_STEPS = 5


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("XDL_DATA_DIR",
                                                             "../shared/datasets"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=20,
                        help="steps each framework runs per turn")
    parser.add_argument("--gap", type=float, default=0.25,
                        help="seconds of pause before each turn")
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
    from xdl.thread_tuning import ThreadTuner

    xdl.manual_seed(0)
    model = create(model_name, **({"dropout": 0.5} if model_name == "book_cnn" else {}))
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    tuner = ThreadTuner.for_backend(xdl.backends.current())

    def step(xb, yb):
        with tuner.step() if tuner else contextlib.nullcontext():
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            model.backward_params(loss_fn.backward())
            optimizer.step()
        return loss

    step.tuner = tuner
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
    """Trains in this process, as many steps at a time as the parent asks (the protocol of
    benchmarks/interleave.py), closing with its memory and page faults. Steps walk one
    shuffled epoch of batches, round and round."""
    x, y = load()
    make = xdl_steps if framework == "xdl" else torch_steps
    step, convert = make(model_name, batch, x, y)
    xs, ys = convert(x), convert(y)
    order = np.random.default_rng(0).permutation(len(y))
    batches = [order[i:i + batch] for i in range(0, len(y), batch)]
    for index in batches[:WARM_UP_STEPS]:
        step(xs[index], ys[index])
    position, steps = WARM_UP_STEPS, 0
    before = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"steps_per_epoch": len(batches)}), flush=True)
    for line in sys.stdin:
        count = int(line)
        if count == 0:
            break
        began = time.perf_counter()
        for _ in range(count):
            index = batches[position % len(batches)]
            step(xs[index], ys[index])
            position += 1
        print(json.dumps({"seconds": time.perf_counter() - began}), flush=True)
        steps += count
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"peak_rss_mb": after.ru_maxrss / 1024,
                      "training_rss_growth_mb": (after.ru_maxrss - before.ru_maxrss) / 1024,
                      "page_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
                      "steps_at_thread_count": tuned_counts(step)}),
          flush=True)


def tuned_counts(step) -> dict | None:
    """How many steps xdl's ThreadTuner ran at each BLAS thread count (None untuned)."""
    tuner = getattr(step, "tuner", None)
    return None if tuner is None else {str(n): count for n, count in tuner.steps_at.items()}


def run_case(model_name, batch):
    workers = {framework: epoch_worker(ARGS.data_dir, ARGS.threads, framework, model_name, batch)
               for framework in ("xdl", "torch")}
    timings = run_pair(workers, ARGS.steps, ARGS.chunk, ARGS.gap, ARGS.repeats,
                       probe=cross_core_read_ratio)
    memory = timings["closing"]
    median = {f: statistics.median(times) for f, times in timings["epoch_seconds"].items()}
    flops = flops_per_sample(model_name) * 60000
    return {
        "model": model_name, "batch_size": batch, "epoch_seconds": median,
        "ratio_xdl_over_torch": median["xdl"] / median["torch"],
        "turn_ratio_quartiles": quartiles(timings["turn_ratios"]),
        "turn_ratios_by_placement": by_placement(timings),
        "gflop_per_epoch": flops / 1e9,
        "achieved_gflops": {f: flops / t / 1e9 for f, t in median.items()},
        "peak_rss_mb": {f: memory[f]["peak_rss_mb"] for f in memory},
        "memory": memory, "epochs": timings["epoch_seconds"],
        "turn_ratios": timings["turn_ratios"],
        "turn_cross_core_read_ratios": timings["turn_probes"],
    }


def by_placement(timings) -> dict:
    """The turns' count and ratio quartiles in each placement of the two CPUs ("shared"
    or "split" cache, :func:`placement.placement`)."""
    groups = {"shared": [], "split": []}
    for ratio, probe in zip(timings["turn_ratios"], timings["turn_probes"]):
        groups[placement(probe)].append(ratio)
    return {name: {"turns": len(ratios), **(quartiles(ratios) if len(ratios) > 1 else {})}
            for name, ratios in groups.items()}


def placements(result) -> str:
    """The per-turn median ratio in each placement that some turns ran in."""
    return ", ".join(f"{name} CPUs: median {group['median']:.2f} over {group['turns']} turns"
                     for name, group in result["turn_ratios_by_placement"].items()
                     if "median" in group)


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
        result = run_case(model_name, batch)
        results.append(result)
        median, flops = result["epoch_seconds"], result["gflop_per_epoch"] * 1e9
        spread = result["turn_ratio_quartiles"]
        print(f"{model_name} batch {batch}: xdl {median['xdl']:.1f} s, torch "
              f"{median['torch']:.1f} s per epoch, ratio {result['ratio_xdl_over_torch']:.2f} "
              f"(per-turn ratios {spread['q1']:.2f}–{spread['q3']:.2f}, median "
              f"{spread['median']:.2f}; {placements(result)}); {flops / 1e9:.0f} "
              f"GFLOP/epoch, xdl "
              f"{flops / median['xdl'] / 1e9:.0f} GFLOP/s "
              f"({100 * flops / median['xdl'] / 1e9 / rate:.0f}% of the matmul rate), peak "
              f"RSS xdl {result['peak_rss_mb']['xdl']:.0f} MB, torch "
              f"{result['peak_rss_mb']['torch']:.0f} MB; xdl steps per BLAS thread count "
              f"{result['memory']['xdl'].get('steps_at_thread_count')}")
    summary = {"benchmark": "cnn-epoch", "machine": f"{platform.machine()}, "
               f"{os.cpu_count()} cores", "threads": ARGS.threads, "steps": ARGS.steps,
               "turn_steps": ARGS.chunk, "gap_seconds": ARGS.gap,
               "matmul_gflops_float32": rate, "numpy": np.__version__, "results": results}
    print(f"float32 matmul: {rate:.0f} GFLOP/s")
    if ARGS.json:
        with open(ARGS.json, "w", encoding="utf-8") as stream:
            json.dump(summary, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
