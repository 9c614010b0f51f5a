"""Timing helpers shared by the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], repeats: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn`` by ``clock``: the least disturbed by a noisy machine."""
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def cpu_best(fn: Callable[[], object], repeats: int) -> float:
    """:func:`best_of` in CPU seconds of this process: on a shared machine, other jobs slow the wall
    clock but not this process's CPU time (much)."""
    return best_of(fn, repeats, time.process_time)


def cpu_best_alternating(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """:func:`cpu_best` of every run, the runs taken in turn ``repeats`` times (a noisy stretch of the
    machine then hits all of them alike): ``{name: least CPU seconds}``."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, fn in runs.items():
            best[name] = min(best[name], cpu_best(fn, 1))
    return best
