"""Forward + backward of MultiheadAttention (self-attention) and TransformerEncoderLayer
(batch 32, sequence 128, width 128, 4 heads, dim_feedforward 512, dropout 0, float32) in
xdl (NumPy backend) and in PyTorch CPU with the same threads, in one run, as time ratios.

    python benchmarks/attention_fwd_bwd.py --threads 2

The two frameworks alternate, resting ``--pause`` seconds before each call; the median
(and the best) of ``--repeats`` calls is reported and written to
benchmarks/results/attention-fwd-bwd.json (``--json`` names another file).
MultiheadAttention runs as self-attention (query is key is value, need_weights=False);
both layers get the same weights through state_dict.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from timing import pin_threads

RESULT = Path(__file__).parent / "results" / "attention-fwd-bwd.json"


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.2,
                        help="seconds of rest before each timed call, so that the other "
                             "framework's idle threads (which spin for a while) have stopped")
    parser.add_argument("--json", default=str(RESULT), help="where to write the results")
    return parser.parse_args()


ARGS = parse()
pin_threads(ARGS.threads)

import numpy as np  # noqa: E402  (after pin_threads)
import torch  # noqa: E402
from timing import timed  # noqa: E402

import xdl  # noqa: E402
from xdl import nn  # noqa: E402

torch.set_num_threads(ARGS.threads)
BATCH, STEPS, WIDTH, HEADS, FEEDFORWARD = 32, 128, 128, 4, 512


def layers(kind):
    """The xdl layer and its PyTorch twin with the same weights."""
    xdl.manual_seed(0)
    if kind == "MultiheadAttention":
        mine = nn.MultiheadAttention(WIDTH, HEADS)
        theirs = torch.nn.MultiheadAttention(WIDTH, HEADS, batch_first=True)
    else:
        mine = nn.TransformerEncoderLayer(WIDTH, HEADS, FEEDFORWARD, dropout=0.0)
        theirs = torch.nn.TransformerEncoderLayer(WIDTH, HEADS, FEEDFORWARD, dropout=0.0,
                                                  batch_first=True)
    theirs.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in
                            mine.state_dict().items()})
    return mine, theirs


def xdl_call(kind, layer, x, grad):
    def run():
        layer.zero_grad()
        if kind == "MultiheadAttention":
            layer(x, x, x, need_weights=False)
            layer.backward_shared(grad)
        else:
            layer(x)
            layer.backward(grad)

    return run


def torch_call(kind, layer, x, grad):
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(grad)

    def run():
        layer.zero_grad()
        xt.grad = None
        if kind == "MultiheadAttention":
            out = layer(xt, xt, xt, need_weights=False)[0]
        else:
            out = layer(xt)
        out.backward(gt)

    return run


def main():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, STEPS, WIDTH), dtype=np.float32)
    grad = rng.standard_normal((BATCH, STEPS, WIDTH), dtype=np.float32)
    results = []
    for kind in ("MultiheadAttention", "TransformerEncoderLayer"):
        mine, theirs = layers(kind)
        calls = {"xdl": xdl_call(kind, mine, x, grad), "torch": torch_call(kind, theirs, x, grad)}
        times = {name: [] for name in calls}
        for call in calls.values():
            call()
        for _ in range(ARGS.repeats):
            for name, call in calls.items():
                time.sleep(ARGS.pause)
                times[name].append(timed(call))
        median = {name: statistics.median(t) for name, t in times.items()}
        best = {name: min(t) for name, t in times.items()}
        ratio = median["xdl"] / median["torch"]
        results.append({"layer": kind, "ms": {k: 1e3 * v for k, v in median.items()},
                        "best_ms": {k: 1e3 * v for k, v in best.items()},
                        "ratio_xdl_over_torch": ratio,
                        "best_ratio_xdl_over_torch": best["xdl"] / best["torch"]})
        print(f"{kind}: median xdl {1e3 * median['xdl']:.1f} ms, torch "
              f"{1e3 * median['torch']:.1f} ms, ratio {ratio:.2f}; best xdl "
              f"{1e3 * best['xdl']:.1f} ms, torch {1e3 * best['torch']:.1f} ms, ratio "
              f"{best['xdl'] / best['torch']:.2f}")
    Path(ARGS.json).parent.mkdir(parents=True, exist_ok=True)
    with open(ARGS.json, "w", encoding="utf-8") as stream:
        json.dump({"benchmark": "attention-forward-backward",
                   "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                   "threads": ARGS.threads, "pause_s": ARGS.pause, "batch": BATCH,
                   "steps": STEPS, "width": WIDTH,
                   "heads": HEADS, "dim_feedforward": FEEDFORWARD, "dtype": "float32",
                   "numpy": np.__version__, "torch": torch.__version__, "results": results},
                  stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
