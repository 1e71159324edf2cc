"""How far apart the hypervisor has put this VM's first two CPUs right now.

On the 2-vCPU benchmark machine a training step of xdl runs at two speeds that change
every few tens of seconds: in its slow spells the time to read 2 MB that the other CPU
has just written doubles (about 115 against 55 µs) while a CPU reading its own writes,
a one-thread matrix product and the memory bandwidth do not change. The vCPUs then sit
on cores that share no cache (other core complexes). xdl pays for it more than PyTorch:
its element-wise passes run on one thread and read what both BLAS threads wrote.

:func:`cross_core_read_ratio` measures that ratio and :func:`placement` names it, so a
benchmark can say in which placement each of its turns ran.
"""

from __future__ import annotations

import os
import threading
import time

#: At or above this ratio of cross-CPU to same-CPU read time the two CPUs share no cache
#: (measured: 0.95–1.2 in the machine's fast spells, 1.6–2.4 in its slow ones).
SPLIT_PLACEMENT_RATIO = 1.4


def cross_core_read_ratio(megabytes: int = 2, repeats: int = 20) -> float:
    """Median time to read a buffer the second CPU has just written over the time to
    read one the first CPU has just written, the reader pinned to the first CPU (1.0
    where there is a single CPU)."""
    import numpy as np

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return 1.0
    buffer = np.zeros(megabytes << 18, np.float32)
    result = np.empty_like(buffer)
    go, written = threading.Event(), threading.Event()

    def writer():
        os.sched_setaffinity(0, {cpus[1]})
        for _ in range(repeats):
            go.wait()
            go.clear()
            np.add(buffer, 1.0, out=buffer)
            written.set()

    def read() -> float:
        began = time.perf_counter()
        np.multiply(buffer, 2.0, out=result)
        return time.perf_counter() - began

    helper = threading.Thread(target=writer, daemon=True)
    helper.start()
    os.sched_setaffinity(0, {cpus[0]})
    try:
        remote, local = [], []
        for _ in range(repeats):
            written.clear()
            go.set()
            written.wait()
            remote.append(read())
            np.add(buffer, 1.0, out=buffer)
            local.append(read())
    finally:
        os.sched_setaffinity(0, cpus)
        helper.join()
    return sorted(remote)[repeats // 2] / sorted(local)[repeats // 2]


def placement(read_ratio: float) -> str:
    """"split" where :func:`cross_core_read_ratio`'s ``read_ratio`` says the two CPUs
    share no cache (at least SPLIT_PLACEMENT_RATIO), else "shared"."""
    return "split" if read_ratio >= SPLIT_PLACEMENT_RATIO else "shared"
