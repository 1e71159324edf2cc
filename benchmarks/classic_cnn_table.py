"""Print the README's classic-CNN table from benchmarks/results/<recipe>.json.

    python benchmarks/run_recipes.py resnet-fashion --data-dir ../shared/datasets
    python benchmarks/classic_cnn_table.py

FLOPs count a multiply-add as two operations (``xdl.flops.count_macs`` × 2) for one
28×28 image's forward pass; the epoch time is the mean wall-clock seconds of a training
epoch (55,000 augmented training images, then the 5,000 held-out validation
images).
"""

from __future__ import annotations

import json
import os
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
RECIPES = ["alexnet-fashion", "vgg-fashion", "nin-fashion", "inception-fashion",
           "resnet-fashion"]


def main() -> int:
    print("| recipe | test accuracy | epochs | parameters | forward FLOPs / image "
          "| s / epoch | backend, machine |")
    print("|---|---|---|---|---|---|---|")
    for name in sys.argv[1:] or RECIPES:
        path = os.path.join(RESULTS, f"{name}.json")
        if not os.path.exists(path):
            print(f"| `{name}` | not run | | | | | |")
            continue
        with open(path, encoding="utf-8") as stream:
            m = json.load(stream)
        print(f"| `{name}` | {100 * m['test_accuracy']:.2f}% | {m['epochs_run']} | "
              f"{m['parameters'] / 1e6:.2f} M | {2 * m['macs_per_image'] / 1e6:.0f} M | "
              f"{m['epoch_seconds']:.0f} | {m['backend']}, {m['machine']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
