"""Interrupt a training run, resume it, and compare with an uninterrupted run.

    python benchmarks/resume_check.py vgg-fashion --epochs 2 --data-dir ../shared/datasets

Three `xdl train` processes with the same seed: one runs ``--epochs`` straight; one is
killed (SIGKILL, as a crash or a pre-empted machine would) as soon as its first
per-epoch checkpoint is on disk; a third continues that checkpoint with ``--resume``.
The two final test accuracies and losses are printed and written to
``benchmarks/results/resume-<recipe>.json``; the exit status is 1 if they differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def train(recipe: str, out: str, args, resume: str | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "xdl.cli", "train", recipe, "--epochs", str(args.epochs),
               "--seed", str(args.seed), "--data-dir", args.data_dir, "--out", out,
               "--no-progress"]
    if resume:
        command += ["--resume", resume]
    return subprocess.Popen(command)


def kill_after_first_checkpoint(process: subprocess.Popen, path: str) -> float:
    """SIGKILL ``process`` once ``path`` exists (checkpoints are written atomically, so
    an existing file is a whole one); returns the seconds it ran."""
    began = time.perf_counter()
    while not os.path.exists(path):
        if process.poll() is not None:
            raise SystemExit(f"resume_check: the run ended (exit {process.returncode}) "
                             f"before writing {path}")
        time.sleep(0.5)
    process.kill()
    process.wait()
    return time.perf_counter() - began


def test_metrics(out: str) -> dict:
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as stream:
        metrics = json.load(stream)
    return {key: metrics[key] for key in ("test_accuracy", "test_loss", "epochs_run")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=os.environ.get("XDL_DATA_DIR",
                                                             "../shared/datasets"))
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the run is interrupted after epoch 1)")
    straight = os.path.join("runs", f"{args.recipe}-uninterrupted")
    resumed = os.path.join("runs", f"{args.recipe}-resumed")
    checkpoint = os.path.join(resumed, "model.npz")
    if os.path.exists(checkpoint):
        os.remove(checkpoint)
    if train(args.recipe, straight, args).wait() != 0:
        return 1
    killed_after = kill_after_first_checkpoint(train(args.recipe, resumed, args), checkpoint)
    if train(args.recipe, resumed, args, resume=checkpoint).wait() != 0:
        return 1
    result = {"recipe": args.recipe, "epochs": args.epochs, "seed": args.seed,
              "killed_after_seconds": round(killed_after, 1),
              "uninterrupted": test_metrics(straight), "resumed": test_metrics(resumed)}
    same = (result["uninterrupted"]["test_accuracy"] == result["resumed"]["test_accuracy"]
            and abs(result["uninterrupted"]["test_loss"] - result["resumed"]["test_loss"])
            <= 1e-5 * abs(result["uninterrupted"]["test_loss"]))
    result["same"] = same
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"resume-{args.recipe}.json"), "w",
              encoding="utf-8") as stream:
        json.dump(result, stream, indent=2)
    print(json.dumps(result, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
