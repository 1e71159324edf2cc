"""Page faults, time and memory of xdl's CNN training steps with the NumPy backend's
malloc tuning on and off (``XDL_MALLOC_TUNING=1`` / ``0``, see
``xdl.backends.numpy.keep_freed_memory``), in alternating fresh processes.

    python benchmarks/malloc_tuning.py --data-dir ../shared/datasets --threads 1 \\
        --steps 200 --json benchmarks/results/malloc-tuning.json

Each run is one ``cnn_epoch.py`` worker (MNIST, SGD with momentum, the same steps);
the median of ``--repeats`` runs per setting is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

CASES = [("lenet5", 64), ("book_cnn", 32)]
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cnn_epoch.py")


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("XDL_DATA_DIR",
                                                             "../shared/datasets"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this file")
    return parser.parse_args()


def run(args, model, batch, tuning: bool) -> dict:
    command = [sys.executable, WORKER, "--worker", "xdl", model, str(batch), "--data-dir",
               args.data_dir, "--threads", str(args.threads), "--steps", str(args.steps)]
    env = {**os.environ, "XDL_MALLOC_TUNING": "1" if tuning else "0"}
    output = subprocess.run(command, check=True, capture_output=True, text=True,
                            env=env).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    args = parse()
    results = []
    for model, batch in CASES:
        runs = {"on": [], "off": []}
        for _ in range(args.repeats):
            for setting in ("off", "on"):
                runs[setting].append(run(args, model, batch, setting == "on"))
        median = {setting: {key: statistics.median(r[key] for r in runs[setting])
                            for key in ("epoch_seconds", "page_faults_per_step",
                                        "peak_rss_mb")}
                  for setting in runs}
        result = {"model": model, "batch_size": batch, "median": median,
                  "speedup": median["off"]["epoch_seconds"] / median["on"]["epoch_seconds"],
                  "runs": runs}
        results.append(result)
        print(f"{model} batch {batch}: tuning off {median['off']['epoch_seconds']:.1f} s/epoch, "
              f"{median['off']['page_faults_per_step']:.0f} page faults/step, "
              f"{median['off']['peak_rss_mb']:.0f} MB; on "
              f"{median['on']['epoch_seconds']:.1f} s/epoch, "
              f"{median['on']['page_faults_per_step']:.0f} page faults/step, "
              f"{median['on']['peak_rss_mb']:.0f} MB; speed-up {result['speedup']:.2f}x")
    if args.json:
        summary = {"benchmark": "malloc-tuning", "machine": f"{platform.machine()}, "
                   f"{os.cpu_count()} cores", "threads": args.threads, "steps": args.steps,
                   "results": results}
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(summary, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
