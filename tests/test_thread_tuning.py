"""ThreadTuner: the thread count it settles on, how it follows a machine that changes,
and that tuned training gives the same parameters as untuned training."""

from __future__ import annotations

import numpy as np
import pytest

import xdl
from xdl import backends, data, nn, optim, training
from xdl.backends import ThreadPool
from xdl.models import MLP
from xdl.thread_tuning import ThreadTuner, candidate_counts


class FakeMachine:
    """A thread pool and a clock: a step at ``count`` threads takes ``cost(count, step)``
    seconds of fake time."""

    def __init__(self, cost, maximum=2):
        self.cost, self.count, self.now, self.steps, self.sets = cost, maximum, 0.0, 0, []
        self.pool = ThreadPool(maximum, self._set)

    def _set(self, count):
        self.sets.append(count)
        self.count = count

    def clock(self):
        return self.now

    def run(self, tuner, steps):
        """Runs ``steps`` steps; returns the thread count each ran at."""
        counts = []
        for _ in range(steps):
            with tuner.step():
                self.now += self.cost(self.count, self.steps)
                counts.append(self.count)
            self.steps += 1
        return counts


def test_candidates_are_all_half_and_one_thread():
    assert candidate_counts(2) == (2, 1)
    assert candidate_counts(16) == (16, 8, 1)
    assert candidate_counts(3) == (3, 1)
    assert candidate_counts(1) == (1,)


# Step times in seconds, binary fractions so that sums are exact. "shared": two CPUs
# that share a cache, where two threads win; "split": CPUs that do not, where one wins.
SHARED = {1: 0.375, 2: 0.25}
SPLIT = {1: 0.375, 2: 0.5}


def test_settles_on_one_thread_where_it_is_faster():
    machine = FakeMachine(lambda count, step: SPLIT[count])
    tuner = ThreadTuner(machine.pool, probe_seconds=50 * 0.375, trials=3, warmup=2,
                        clock=machine.clock)
    counts = machine.run(tuner, 2 + 8 + 50)
    assert counts[:2] == [2, 2]                     # warm-up on all threads
    assert counts[2:10] == [1] * 4 + [2] * 4        # 1 + 3 trials of each, the current last
    assert counts[10:] == [1] * 50                  # then the faster count
    assert tuner.steps_at == {2: 6, 1: 54}


def test_keeps_all_threads_where_they_are_faster_probing_one_thread_now_and_then():
    machine = FakeMachine(lambda count, step: SHARED[count])
    tuner = ThreadTuner(machine.pool, probe_seconds=20 * 0.25, trials=2, warmup=0,
                        clock=machine.clock)
    counts = machine.run(tuner, 6 + 3 * 21)
    assert counts[:6] == [1, 1, 1, 2, 2, 2]
    assert counts[6:] == ([2] * 20 + [1]) * 3      # the probes at one thread lose
    assert tuner.steps_at[1] == 6


def test_explores_again_as_soon_as_the_machine_changes():
    """Two threads win until step 100, then lose: the tuner moves to one thread within
    a few steps instead of waiting for a probe."""
    machine = FakeMachine(lambda count, step: (SHARED if step < 100 else SPLIT)[count])
    tuner = ThreadTuner(machine.pool, probe_seconds=1000, trials=3, warmup=0,
                        clock=machine.clock)
    counts = machine.run(tuner, 200)
    assert counts[8:100] == [2] * 92
    switched = 100 + counts[100:].index(1)
    assert switched <= 100 + 4                     # the median of the last 7 steps turns
    assert counts[switched:switched + 8] == [1] * 4 + [2] * 4
    assert counts[switched + 8:] == [1] * (200 - switched - 8)


def test_a_probe_brings_all_threads_back_once_they_win_again():
    """One thread wins until step 100 (the time of a one-thread step does not change
    then, so only a probe can notice), then two threads win again."""
    machine = FakeMachine(lambda count, step: (SPLIT if step < 100 else SHARED)[count])
    tuner = ThreadTuner(machine.pool, probe_seconds=30 * 0.375, trials=3, warmup=0,
                        clock=machine.clock)
    counts = machine.run(tuner, 250)
    assert counts[100 - 31:100].count(2) == 1    # one probe step every 30 steps
    noticed = 100 + counts[100:].index(2)        # the first probe after the change
    assert noticed <= 100 + 30
    assert counts[noticed + 1:noticed + 9] == [1] * 4 + [2] * 4
    settled = counts[noticed + 9:]                # probes now every 45 two-thread steps
    assert settled == (([2] * 45 + [1]) * 10)[:len(settled)]


def test_a_pause_that_slows_two_steps_does_not_make_it_explore():
    machine = FakeMachine(lambda count, step: SHARED[count] * (3 if step % 20 < 2 else 1))
    tuner = ThreadTuner(machine.pool, probe_seconds=1000, trials=3, warmup=0,
                        clock=machine.clock)
    counts = machine.run(tuner, 200)
    assert counts[8:] == [2] * 192


def test_noise_below_the_drift_does_not_make_it_explore():
    machine = FakeMachine(lambda count, step: SHARED[count] * (1.1 if step % 2 else 0.9))
    tuner = ThreadTuner(machine.pool, probe_seconds=1000, trials=3, warmup=0,
                        clock=machine.clock)
    counts = machine.run(tuner, 300)
    assert counts[8:] == [2] * 292


def test_close_gives_every_thread_back():
    machine = FakeMachine(lambda count, step: {1: 0.01, 2: 0.02}[count])
    with ThreadTuner(machine.pool, probe_seconds=10, trials=1, warmup=0,
                     clock=machine.clock) as tuner:
        machine.run(tuner, 5)
        assert machine.count == 1
    assert machine.count == 2


def test_bad_options_are_refused():
    pool = ThreadPool(2, lambda count: None)
    for options in ({"probe_seconds": 0}, {"trials": 0}, {"warmup": -1}, {"drift": 0.0}):
        with pytest.raises(ValueError, match="ThreadTuner"):
            ThreadTuner(pool, **options)


def test_no_tuner_without_a_pool_or_when_turned_off(monkeypatch):
    single = type("Backend", (), {"thread_pool": ThreadPool(1, lambda count: None)})()
    assert ThreadTuner.for_backend(single) is None
    if backends.unavailable_reason("torch") is None:
        assert ThreadTuner.for_backend(backends.get("torch")) is None
    monkeypatch.setenv("XDL_TUNE_THREADS", "0")
    assert ThreadTuner.for_backend(backends.get("numpy")) is None


def _blas_threads():
    from threadpoolctl import ThreadpoolController

    return [lib["num_threads"] for lib in ThreadpoolController().info()
            if lib["user_api"] == "blas"]


def test_the_numpy_pool_sets_the_blas_threads():
    pool = backends.get("numpy").thread_pool
    assert pool is not None and pool.maximum == max(_blas_threads())
    try:
        pool.set(1)
        assert _blas_threads() == [1] * len(_blas_threads())
    finally:
        pool.set(pool.maximum)
    assert max(_blas_threads()) == pool.maximum


def _train(tuner, steps=12):
    xdl.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((steps * 64, 256)).astype(np.float32)
    y = np.arange(steps * 64) % 10
    loader = data.DataLoader(x, y, batch_size=64, shuffle=True, seed=0)
    model = MLP([256, 512, 10])
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    logs = training.train_epoch(model, nn.CrossEntropyLoss(), optimizer, loader, tuner=tuner)
    return logs, [p.data for p in model.parameters()]


def test_tuned_training_gives_the_very_parameters_of_untuned_training():
    pool = backends.get("numpy").thread_pool
    if pool.maximum < 2:
        pytest.skip("NumPy's BLAS has a single thread here: there is nothing to tune")
    with ThreadTuner(pool, probe_seconds=1e-9, trials=1, warmup=0) as tuner:
        tuned_logs, tuned = _train(tuner)
        assert all(steps > 0 for steps in tuner.steps_at.values())
    logs, untuned = _train(None)
    assert tuned_logs["loss"] == logs["loss"]
    for a, b in zip(tuned, untuned):       # OpenBLAS never splits the summed axis
        np.testing.assert_array_equal(a, b)
    assert max(_blas_threads()) == pool.maximum


class OneThreadLooksFaster(ThreadTuner):
    """A tuner on the real pool whose clock makes a step at n threads last n seconds."""

    def __init__(self, pool):
        super().__init__(pool, probe_seconds=1e9, trials=1, warmup=0, clock=self._clock)
        self.now = 0.0

    def _clock(self):
        self.now += self.count
        return self.now


class BlasThreadsPerStep(training.Callback):
    def __init__(self):
        self.threads = []

    def on_batch_end(self, state, loss):
        self.threads.append(max(_blas_threads()))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow that ends training
def test_fit_tunes_and_gives_the_threads_back_even_when_training_fails(monkeypatch):
    pool = backends.get("numpy").thread_pool
    if pool.maximum < 2:
        pytest.skip("NumPy's BLAS has a single thread here: there is nothing to tune")
    monkeypatch.setattr(training.ThreadTuner, "for_backend",
                        classmethod(lambda cls, backend: OneThreadLooksFaster(pool)))
    x, y = data.xor(n=64, noise=0.1, seed=0)
    model = MLP([2, 16, 2], activation="relu")
    optimizer = optim.SGD(model.parameters(), lr=1e30, momentum=0.9)
    recorder = BlasThreadsPerStep()
    with pytest.raises(FloatingPointError):
        training.fit(model, nn.CrossEntropyLoss(), optimizer, data.DataLoader(x, y, batch_size=8),
                     epochs=5, progress=False, callbacks=[recorder])
    assert recorder.threads[:4] == [1, 1, pool.maximum, pool.maximum]
    assert set(recorder.threads[4:]) == {1}
    assert max(_blas_threads()) == pool.maximum
    monkeypatch.undo()
    recorder.threads.clear()
    training.fit(MLP([2, 4, 2]), nn.CrossEntropyLoss(), optim.SGD(MLP([2, 4, 2]).parameters()),
                 data.DataLoader(x, y, batch_size=8), epochs=1, progress=False,
                 callbacks=[recorder], tune_threads=False)
    assert set(recorder.threads) == {pool.maximum}
