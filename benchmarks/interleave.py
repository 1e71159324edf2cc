"""Two training processes timed in turns, so that this shared machine's slow spells fall
on both alike: what benchmarks/cnn_epoch.py, malloc_tuning.py and thread_counts.py share.

A worker process answers its first line with ``{"steps_per_epoch": n}``, then each stdin
line (a step count; 0 ends) with ``{"seconds": s}`` for that many training steps, and
ends with a JSON line of its own figures (memory, page faults).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

#: The script whose ``--worker`` mode trains one framework (benchmarks/cnn_epoch.py).
EPOCH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cnn_epoch.py")


class Worker:
    """A worker process started from ``command`` (with ``env``, if given)."""

    def __init__(self, command: list, env: dict | None = None):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)
        self.steps_per_epoch = self._answer()["steps_per_epoch"]

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker {self.process.args[1:]} exited with "
                               f"status {self.process.wait()}")
        return json.loads(line)

    def _send(self, steps: int) -> None:
        self.process.stdin.write(f"{steps}\n")
        self.process.stdin.flush()

    def run(self, steps: int) -> float:
        """Seconds ``steps`` training steps take."""
        self._send(steps)
        return self._answer()["seconds"]

    def finish(self) -> dict:
        """The worker's closing figures ({} if it has already exited); it exits."""
        if self.process.poll() is not None:
            return {}
        self._send(0)
        result = self._answer()
        self.process.wait()
        return result


def epoch_worker(data_dir: str, threads: int, framework: str, model_name: str, batch: int,
                 env: dict | None = None) -> Worker:
    """A cnn_epoch.py worker training ``model_name`` at ``batch`` in ``framework`` ("xdl"
    or "torch") on ``threads`` threads, in environment ``env`` (this one's when None)."""
    return Worker([sys.executable, EPOCH_SCRIPT, "--data-dir", data_dir, "--threads",
                   str(threads), "--worker", framework, model_name, str(batch)], env)


def take_turns(workers: dict, steps: int | None, chunk: int, gap: float,
               repeats: int, probe=None) -> dict:
    """``repeats`` epochs of each worker (scaled from ``steps`` timed steps when given),
    the workers taking turns ``chunk`` steps at a time with the first to go alternating,
    each turn after a ``gap`` seconds' pause (longer than an idle BLAS or OpenMP thread
    keeps spinning, so one worker's idle threads do not slow the other's turn).

    Returns every worker's epoch seconds and, per turn, the first worker's time over the
    second's, and ``probe()``'s value measured before the turn (when a probe is given:
    :func:`placement.cross_core_read_ratio`)."""
    first, second = workers
    per_epoch = workers[first].steps_per_epoch
    timed = per_epoch if steps is None else min(steps, per_epoch)
    chunks = [min(chunk, timed - start) for start in range(0, timed, chunk)]
    epochs = {name: [] for name in workers}
    turn_ratios, turn_probes = [], []
    for _ in range(repeats):
        totals = dict.fromkeys(workers, 0.0)
        for index, count in enumerate(chunks):
            seconds = {}
            if probe is not None:
                turn_probes.append(probe())
            for name in (first, second) if index % 2 == 0 else (second, first):
                time.sleep(gap)
                seconds[name] = workers[name].run(count)
                totals[name] += seconds[name]
            turn_ratios.append(seconds[first] / seconds[second])
        for name, total in totals.items():
            epochs[name].append(total * per_epoch / timed)
    return {"epoch_seconds": epochs, "turn_ratios": turn_ratios, "turn_probes": turn_probes}


def run_pair(workers: dict, steps, chunk, gap, repeats, probe=None) -> dict:
    """:func:`take_turns`, then every worker's closing figures (also on failure)."""
    try:
        timings = take_turns(workers, steps, chunk, gap, repeats, probe)
    finally:
        closing = {name: worker.finish() for name, worker in workers.items()}
    return {**timings, "closing": closing}


def quartiles(values) -> dict:
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return {"q1": q1, "median": q2, "q3": q3}
