"""Time per training step of xdl on one BLAS thread, on all of them and under the
ThreadTuner that ``fit`` uses, next to PyTorch on all threads, in each placement of
the machine's two CPUs (shared or split cache, :mod:`placement`).

    python benchmarks/thread_counts.py --data-dir ../shared/datasets --model book_cnn \\
        --batch 32 --seconds 300

Each configuration trains in a process of its own (cnn_epoch.py's workers); in every
round the parent probes the placement, then each process runs ``--chunk`` steps after
a ``--gap`` pause. The medians over the rounds of each placement are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from interleave import epoch_worker
from placement import cross_core_read_ratio, placement


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("XDL_DATA_DIR",
                                                             "../shared/datasets"))
    parser.add_argument("--model", default="book_cnn", choices=["book_cnn", "lenet5"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.25)
    parser.add_argument("--json", help="also write the results to this file")
    return parser.parse_args()


def configurations(threads: int) -> dict:
    """name → (framework, BLAS threads, tuned)."""
    return {f"xdl, {threads} threads": ("xdl", threads, False),
            "xdl, 1 thread": ("xdl", 1, False),
            "xdl, tuned": ("xdl", threads, True),
            f"torch, {threads} threads": ("torch", threads, False)}


def main():
    args = parse()
    configs = configurations(args.threads)
    workers = {name: epoch_worker(args.data_dir, threads, framework, args.model, args.batch,
                                  dict(os.environ, XDL_TUNE_THREADS="1" if tuned else "0"))
               for name, (framework, threads, tuned) in configs.items()}
    torch_name = f"torch, {args.threads} threads"
    rounds = {"shared": [], "split": []}
    end = time.time() + args.seconds
    while time.time() < end:
        where = placement(cross_core_read_ratio())
        row = {}
        for name, worker in workers.items():
            time.sleep(args.gap)
            row[name] = worker.run(args.chunk) / args.chunk * 1e3
        rounds[where].append(row)
    closing = {name: worker.finish() for name, worker in workers.items()}
    summary = {}
    for where, rows in rounds.items():
        if not rows:
            continue
        ms = {name: statistics.median(row[name] for row in rows) for name in configs}
        ratio = {name: statistics.median(row[name] / row[torch_name] for row in rows)
                 for name in configs if name != torch_name}
        summary[where] = {"rounds": len(rows), "ms_per_step": ms, "ratio_to_torch": ratio}
        print(f"{where} CPUs, {len(rows)} rounds: " + ", ".join(
            f"{name} {ms[name]:.2f} ms" + (f" ({ratio[name]:.2f}x)" if name in ratio else "")
            for name in configs))
    print(f"tuned xdl's steps per BLAS thread count: "
          f"{closing['xdl, tuned'].get('steps_at_thread_count')}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump({"benchmark": "thread-counts", "model": args.model, "batch": args.batch,
                       "threads": args.threads, "chunk": args.chunk, "gap": args.gap,
                       "placements": summary, "rounds": rounds, "closing": closing},
                      stream, indent=2)


if __name__ == "__main__":
    main()
