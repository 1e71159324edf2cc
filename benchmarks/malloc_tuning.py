"""The NumPy backend's malloc tuning (xdl/backends/numpy.py) on and off: xdl training
steps of the book CNN (batch 32 and 128) and LeNet-5 (batch 64) on MNIST, in two
processes that take turns (benchmarks/interleave.py), one with ``XDL_MALLOC_TUNING=0``.

    python benchmarks/malloc_tuning.py --data-dir ../shared/datasets --steps 60

Prints the step time with the tuning over the time without it (median epoch, and the
quartiles of the per-turn ratios) and each process's page faults per step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys

from interleave import epoch_worker, quartiles, run_pair

CASES = [("book_cnn", 32), ("book_cnn", 128), ("lenet5", 64)]


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("XDL_DATA_DIR",
                                                             "../shared/datasets"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=5)
    parser.add_argument("--gap", type=float, default=0.25)
    parser.add_argument("--json", help="also write the results to this file")
    return parser.parse_args()


def run_case(args, model_name, batch):
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    workers = {setting: epoch_worker(args.data_dir, args.threads, "xdl", model_name, batch,
                                     {**environment, "XDL_MALLOC_TUNING": flag})
               for setting, flag in (("tuned", "1"), ("default", "0"))}
    timings = run_pair(workers, args.steps, args.chunk, args.gap, args.repeats)
    median = {s: statistics.median(t) for s, t in timings["epoch_seconds"].items()}
    return {"model": model_name, "batch_size": batch, "epoch_seconds": median,
            "ratio_tuned_over_default": median["tuned"] / median["default"],
            "turn_ratio_quartiles": quartiles(timings["turn_ratios"]),
            "page_faults_per_step": {s: c["page_faults_per_step"]
                                     for s, c in timings["closing"].items()},
            "turn_ratios": timings["turn_ratios"]}


def main():
    args = parse()
    results = []
    for model_name, batch in CASES:
        result = run_case(args, model_name, batch)
        results.append(result)
        spread, faults = result["turn_ratio_quartiles"], result["page_faults_per_step"]
        print(f"{model_name} batch {batch}: tuned/default {result['ratio_tuned_over_default']:.2f} "
              f"(per-turn ratios {spread['q1']:.2f}–{spread['q3']:.2f}, median "
              f"{spread['median']:.2f}); page faults per step {faults['tuned']:.0f} tuned, "
              f"{faults['default']:.0f} default")
    if args.json:
        summary = {"benchmark": "malloc-tuning", "machine": f"{platform.machine()}, "
                   f"{os.cpu_count()} cores", "threads": args.threads, "steps": args.steps,
                   "turn_steps": args.chunk, "gap_seconds": args.gap, "results": results}
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(summary, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
