"""Forward + backward of LSTM and GRU (batch 32, sequence 64, 2 layers, hidden 64 and
256, input size = hidden size, float32) in xdl and in PyTorch CPU with the same
threads, in one run, as time ratios.

    python benchmarks/rnn_fwd_bwd.py --threads 2

The two frameworks alternate; the median of ``--repeats`` calls is reported.
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
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="also write the results to this file")
    return parser.parse_args()


ARGS = parse()
pin_threads(ARGS.threads)

import numpy as np  # noqa: E402  (after pin_threads)
import torch  # noqa: E402
from timing import timed  # noqa: E402

import xdl  # noqa: E402
from xdl import nn  # noqa: E402

torch.set_num_threads(ARGS.threads)
BATCH, STEPS, LAYERS = 32, 64, 2


def xdl_call(kind, hidden, x, grad):
    xdl.manual_seed(0)
    layer = getattr(nn, kind)(hidden, hidden, num_layers=LAYERS)

    def run():
        layer(x)
        layer.zero_grad()
        layer.backward(grad)

    return run


def torch_call(kind, hidden, x, grad):
    torch.manual_seed(0)
    layer = getattr(torch.nn, kind)(hidden, hidden, num_layers=LAYERS, batch_first=True)
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(grad)

    def run():
        layer.zero_grad()
        xt.grad = None
        layer(xt)[0].backward(gt)

    return run


def main():
    rng = np.random.default_rng(0)
    results = []
    for kind in ("LSTM", "GRU"):
        for hidden in (64, 256):
            x = rng.standard_normal((BATCH, STEPS, hidden), dtype=np.float32)
            grad = rng.standard_normal((BATCH, STEPS, hidden), dtype=np.float32)
            calls = {"xdl": xdl_call(kind, hidden, x, grad),
                     "torch": torch_call(kind, hidden, x, grad)}
            times = {name: [] for name in calls}
            for call in calls.values():
                call()
            for _ in range(ARGS.repeats):
                for name, call in calls.items():
                    times[name].append(timed(call))
            median = {name: statistics.median(t) for name, t in times.items()}
            ratio = median["xdl"] / median["torch"]
            results.append({"layer": kind, "hidden": hidden, "ms": {k: 1e3 * v for k, v in
                                                                   median.items()},
                            "ratio_xdl_over_torch": ratio})
            print(f"{kind} hidden {hidden}: xdl {1e3 * median['xdl']:.1f} ms, torch "
                  f"{1e3 * median['torch']:.1f} ms, ratio {ratio:.2f}")
    if ARGS.json:
        with open(ARGS.json, "w", encoding="utf-8") as stream:
            json.dump({"benchmark": "rnn-forward-backward", "machine": f"{platform.machine()}, "
                       f"{os.cpu_count()} cores", "threads": ARGS.threads, "batch": BATCH,
                       "steps": STEPS, "layers": LAYERS, "torch": torch.__version__,
                       "results": results}, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
