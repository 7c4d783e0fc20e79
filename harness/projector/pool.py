"""Independent optimiser runs on every core. A law's fit from ~170 starts and each bootstrap refit
are independent L-BFGS-B runs, single-threaded in scipy, so one process per core divides their wall
time. The results are the same as in one process: each run is the same computation, and they come
back in order (tests/test_fits.py checks it).

Workers are forked (Linux), one pool per call, closed when it returns: they inherit the imported
modules, so a pool starts in milliseconds, and they run only numpy and scipy, never torch's OpenMP
pool, which does not survive a fork. Each run keeps BLAS to one thread: on vectors this small
OpenBLAS's threads only contend (one process with BLAS's 2 threads: 40 s of wall and 75 s of CPU; with
1 thread 35 s; two 1-thread processes 21 s, the same law: fit-law on the demo's reduced grid, 2-core
AMD EPYC, 2026-12-07).
MEEKBENCH_FIT_WORKERS=1 keeps everything in this process."""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence

from threadpoolctl import threadpool_limits


def workers() -> int:
    asked = os.environ.get("MEEKBENCH_FIT_WORKERS")
    if asked:
        return max(1, int(asked))
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pmap(fn: Callable, items: Sequence) -> list:
    """``[fn(x) for x in items]``, over the pool's processes when there are several; ``fn`` must be a
    module-level function (or a functools.partial of one) and ``items`` picklable."""
    n = min(workers(), len(items))
    if n <= 1:
        with threadpool_limits(1):
            return [fn(x) for x in items]
    # a pool per call, gone when it returns: no process of it outlives the fit (a point's job stop, a test
    # that counts children, a signal, see none of it)
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork"), initializer=_one_blas_thread) as pool:
        return list(pool.map(fn, items))


def _one_blas_thread() -> None:
    threadpool_limits(1)
