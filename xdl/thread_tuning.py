"""Pick a CPU backend's thread count while training runs, by timing its steps.

Two threads do not always beat one. On the 2-vCPU benchmark machine the hypervisor
moves the two CPUs, every few tens of seconds, between cores that share a cache and
cores that do not (benchmarks/placement.py). In the first placement two BLAS threads
make a step of the book CNN faster than one; in the second, slower: every element-wise
pass, which runs on one thread, then reads what the other CPU's BLAS thread wrote
through memory instead of the shared cache (the README's Speed section has the
measurements). Neither fixed choice is right, so :class:`ThreadTuner` measures.

It alternates between two phases:

- **explore**: ``trials + 1`` steps at each candidate count in turn, the one in use
  last; the first step after a change is not counted (it reads data the other
  threads left in their caches), and the count with the lowest median over the
  other ``trials`` is chosen;
- **exploit**: steps at the chosen count, with one probe step at another candidate
  once the chosen count's steps have taken ``probe_seconds``. It explores again when a
  probe beats the median of the last ``2 * trials + 1`` steps by more than
  PROBE_MARGIN, or when that median moves more than ``drift`` away from the chosen
  count's exploration median (the machine changed; a step or two slowed by a pause in
  training, caches gone cold, do not move the median).

With the defaults on two CPUs, one step every half second runs at the other count
(one in 30 of the book CNN's steps at batch 32), and a change of placement is followed
within about half a second. OpenBLAS splits a product over its output, never over the
summed axis, so every count gives the same bits; the tuner changes speed only.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections import deque

#: A probe step at another thread count that is this much faster than the chosen
#: count's recent steps starts a new exploration.
PROBE_MARGIN = 0.1


def candidate_counts(maximum: int) -> tuple[int, ...]:
    """The thread counts worth timing on ``maximum`` threads: all of them, half and one."""
    return tuple(sorted({maximum, max(1, maximum // 2), 1}, reverse=True))


class ThreadTuner:
    """Keeps ``pool`` (a :class:`xdl.backends.ThreadPool`) at whichever candidate thread
    count makes a step fastest; wrap each training step in :meth:`step`::

        tuner = ThreadTuner.for_backend(xdl.backends.current())
        with tuner:
            for x, t in loader:
                with tuner.step():
                    ...  # zero_grad, forward, backward, optimizer step

    ``clock`` returns seconds (a synchronous CPU backend's steps end when they return).
    Leaving the ``with`` block (or :meth:`close`) gives the pool all its threads back.
    ``steps_at`` counts the steps run at each count.
    """

    def __init__(self, pool, probe_seconds: float = 0.5, trials: int = 3, drift: float = 0.25,
                 warmup: int = 2, clock=time.perf_counter):
        if probe_seconds <= 0 or trials < 1 or warmup < 0 or drift <= 0:
            raise ValueError(f"ThreadTuner: probe_seconds and drift must be > 0, trials >= 1 "
                             f"and warmup >= 0, got probe_seconds={probe_seconds}, "
                             f"trials={trials}, warmup={warmup}, drift={drift}")
        self.pool, self.probe_seconds, self.trials = pool, probe_seconds, trials
        self.drift, self.clock = drift, clock
        self.candidates = candidate_counts(pool.maximum)
        self.count = self._chosen = pool.maximum
        self.steps_at = dict.fromkeys(self.candidates, 0)
        self._warmup_left = warmup
        self._explore = True
        self._plan: list[tuple[int, bool]] = []
        self._trial_times: dict[int, list[float]] = {}
        self._reference = 0.0
        self._recent: deque[float] = deque(maxlen=2 * trials + 1)
        self._since_probe = 0.0
        self._probes = 0

    @classmethod
    def for_backend(cls, backend, **options) -> ThreadTuner | None:
        """A tuner for ``backend``'s thread pool; None where it has none to tune (GPU
        backends, a single thread, threadpoolctl finding no BLAS library) or where the
        environment sets ``XDL_TUNE_THREADS=0``."""
        if os.environ.get("XDL_TUNE_THREADS", "1") == "0":
            return None
        pool = backend.thread_pool
        if pool is None or pool.maximum < 2:
            return None
        return cls(pool, **options)

    @contextlib.contextmanager
    def step(self):
        """Run one step at the count the tuner chooses and time it."""
        count = self._next_count()
        if count != self.count:
            self.pool.set(count)
            self.count = count
        began = self.clock()
        yield
        self._record(count, self.clock() - began)

    def close(self) -> None:
        """Give the pool all its threads back."""
        if self.count != self.pool.maximum:
            self.pool.set(self.pool.maximum)
            self.count = self.pool.maximum

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _next_count(self) -> int:
        if self._warmup_left:
            return self.pool.maximum
        if self._explore and not self._plan:
            self._start_exploring()
        if self._plan:
            return self._plan[0][0]
        if self._since_probe >= self.probe_seconds:
            others = [count for count in self.candidates if count != self._chosen]
            return others[self._probes % len(others)]
        return self._chosen

    def _start_exploring(self) -> None:
        order = [count for count in self.candidates if count != self.count] + [self.count]
        self._plan = [(count, counted) for count in order
                      for counted in [False] + [True] * self.trials]
        self._trial_times = {count: [] for count in self.candidates}
        self._explore = False

    def _record(self, count: int, seconds: float) -> None:
        self.steps_at[count] += 1
        if self._warmup_left:
            self._warmup_left -= 1
        elif self._plan:
            if self._plan.pop(0)[1]:
                self._trial_times[count].append(seconds)
            if not self._plan:
                self._settle()
        elif count != self._chosen:
            self._since_probe, self._probes = 0.0, self._probes + 1
            full = len(self._recent) == self._recent.maxlen
            self._explore = full and seconds < (1 - PROBE_MARGIN) * statistics.median(self._recent)
        else:
            self._since_probe += seconds
            self._recent.append(seconds)
            if len(self._recent) == self._recent.maxlen:
                median = statistics.median(self._recent)
                self._explore = abs(median / self._reference - 1) > self.drift

    def _settle(self) -> None:
        medians = {count: statistics.median(times) for count, times in self._trial_times.items()}
        self._chosen = min(medians, key=medians.get)
        self._reference = medians[self._chosen]
        self._recent.clear()
        self._since_probe = 0.0
