"""Resumable sweeps: run every ``(config, seed)`` of a spec that the store lacks.

Pending runs that differ only in their seed are grouped into tasks of at most
``max_batch`` seeds, each one :func:`overtensor.decompose_batch` call
(:func:`plan`). Tasks run in worker processes, a local
``ProcessPoolExecutor`` or a Dask cluster; the parent stores each task's
records as soon as it finishes (:func:`sweep`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import platform
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np
import scipy

from .. import __version__
from ..api import decompose, decompose_batch
from ..errors import OvertensorError
from ..result import DecompositionResult, History
from ..symcp import SymCP
from .spec import Record, RunConfig, Spec, build_target
from .store import RunRecord, Store, compact_history

__all__ = ["Task", "SweepOutcome", "plan", "execute", "sweep", "local_pool", "dask_executor"]

#: Most seeds solved in one batched call.
MAX_BATCH = 32


class Task(NamedTuple):
    """Runs of one config with several seeds, solved as one batch."""

    spec: str
    config: RunConfig
    seeds: tuple[int, ...]
    record: Record


class SweepOutcome(NamedTuple):
    total: int  # runs in the spec
    before: int  # already stored when the sweep started
    added: int  # stored by this sweep


def plan(spec: Spec, done: set[tuple[str, int]], workers: int = 1, max_batch: int = MAX_BATCH) -> list[Task]:
    """Tasks for the runs of ``spec`` not in ``done``, in spec order.

    A config's pending seeds are cut into chunks of
    ``min(max_batch, ceil(pending / workers))`` so that every worker gets work.
    """
    pending: dict[str, tuple[RunConfig, list[int]]] = {}
    for run in spec.expand():
        if (run.key, run.seed) not in done:
            seeds = pending.setdefault(run.key, (run.config, []))[1]
            if run.seed not in seeds:  # two blocks may spell the same config
                seeds.append(run.seed)
    n = sum(len(seeds) for _, seeds in pending.values())
    size = max(1, min(max_batch, math.ceil(n / max(workers, 1))))
    return [Task(spec.name, config, tuple(seeds[i:i + size]), spec.record)
            for config, seeds in pending.values() for i in range(0, len(seeds), size)]


# ----------------------------------------------------------------------------- in the worker


def execute(task: Task) -> list[RunRecord]:
    """Solve one task; a run whose method raises is recorded with status ``error``."""
    start = time.perf_counter()
    config = task.config
    targets = [build_target(config, s) for s in task.seeds]
    outcomes, batch = _solve(config, targets, list(task.seeds), task.record.truth)
    wall = time.perf_counter() - start
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    versions = {"overtensor": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
                "python": platform.python_version()}
    records = []
    for seed, target, out in zip(task.seeds, targets, outcomes):
        common = dict(key=config.key, seed=seed, spec=task.spec, experiment=config.experiment, label=config.label,
                      method=config.method, components=config.components, config=config.model_dump(mode="json"),
                      versions=versions, wall_seconds=wall, finished_at=finished)
        if isinstance(out, str):
            records.append(RunRecord(**common, status="error", error=out, relative_error=None, converged=False,
                                     steps=None, seconds=None, metrics={}, history=None, batch=1))
            continue
        records.append(RunRecord(
            **common, status="ok", error=None, relative_error=out.relative_error, converged=out.converged,
            steps=out.steps, seconds=out.seconds, metrics=_metrics(out, target, task.record),
            history=compact_history(out.history, task.record.history_rows) if task.record.history else None,
            batch=batch))
    return records


def _solve(config: RunConfig, targets: list[SymCP], seeds: list[int],
           truth: bool) -> tuple[list[DecompositionResult | str], int]:
    """One batched call; if it raises (a run diverged, targets of unequal norm...), each run alone.

    Returns each run's result (polished if asked) or error message, and how many runs each call solved.
    """
    options: dict[str, Any] = dict(config.options)
    if len(seeds) > 1:
        with contextlib.suppress(OvertensorError):
            extra = {"truth": targets} if truth else {}
            results = decompose_batch(targets, config.components, config.method, seeds=seeds, **options, **extra)
            return [_then_polish(config, r, t) for r, t in zip(results, targets)], len(seeds)
    out: list[DecompositionResult | str] = []
    for target, seed in zip(targets, seeds):
        try:
            extra = {"truth": target} if truth else {}
            result = decompose(target, config.components, config.method, seed=seed, **options, **extra)
            out.append(_then_polish(config, result, target))
        except OvertensorError as exc:
            out.append(str(exc))
    return out, 1


def _then_polish(config: RunConfig, result: DecompositionResult, target: SymCP) -> DecompositionResult:
    """``result`` followed by recover-then-polish if the config asks for it (metrics ``polished_*``).

    The returned result keeps the method's metrics; its history continues with the
    polish phase (column ``phase``: 0 method, 1 polish; steps counted on).
    """
    if config.polish is None:
        return result
    import overtensor

    polished = overtensor.polish(overtensor.recover(result.model), target, **config.polish)  # type: ignore
    h1, h2 = result.history, polished.history
    names = list(dict.fromkeys([*h1.names, *h2.names]))

    def column(h: History, name: str, offset: float = 0.0) -> list:
        if name not in h:
            return [math.nan] * len(h)
        return list(np.asarray(h[name], dtype=float) + (offset if name == "step" else 0.0))

    joined = {n: column(h1, n) + column(h2, n, float(result.steps)) for n in names}
    joined["phase"] = [0] * len(h1) + [1] * len(h2)
    info = {**result.info, "polished_relative_error": polished.relative_error,
            "polished_converged": polished.converged, "polished_steps": polished.steps,
            "polished_components": polished.model.rank}
    return dataclasses.replace(result, history=History(joined), info=info)


def _metrics(result: DecompositionResult, target: SymCP, record: Record) -> dict[str, Any]:
    """The result's summary, the worst best-correlation with a true direction, and recovery if asked."""
    metrics = {k: v for k, v in result.summary().items() if k not in ("method", "components")}
    V = result.model.vectors
    metrics["min_correlation"] = float(np.abs(target.vectors @ V.T).max(axis=1).min()) if len(V) else 0.0
    if record.recovery:
        import overtensor

        matched = overtensor.match(overtensor.recover(result.model), target).summary()  # type: ignore
        metrics.update({f"recovery_{k}": len(v) if isinstance(v, (list, tuple)) else v
                        for k, v in matched.items()})
    return metrics


# ----------------------------------------------------------------------------- in the parent


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; only the parent decides what to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def local_pool(workers: int) -> Iterator[tuple[Executor, int]]:
    """A process pool (and its size) whose workers ignore Ctrl-C and are stopped if the sweep is interrupted."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_ignore_sigint)
    try:
        yield pool, workers
    except BaseException:
        # Python < 3.14 has no public way to stop running tasks (3.14: terminate_workers);
        # their results would be dropped anyway
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        raise
    else:
        pool.shutdown()


@contextlib.contextmanager
def dask_executor(address: str) -> Iterator[tuple[Executor, int]]:
    """A ``concurrent.futures`` view of an existing Dask cluster at ``address``, and its worker count."""
    from distributed import Client

    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise OvertensorError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        yield client.get_executor(pure=False), max(1, len(client.scheduler_info()["workers"]))
    finally:
        client.close()


def sweep(spec: Spec, store: Store, executor: Executor, *, workers: int = 1, max_batch: int = MAX_BATCH,
          progress: Callable[[int], None] | None = None) -> SweepOutcome:
    """Run the spec's missing runs on ``executor`` and store each task's records as it finishes.

    ``progress`` is called with the number of runs each finished task stored.
    On an exception (``KeyboardInterrupt`` included) pending tasks are
    cancelled and the exception propagates; everything stored stays.
    """
    store.save_spec(spec.name, spec.experiment, spec.model_dump(mode="json"))
    done = store.done()
    total = len(spec.expand())
    before = sum(1 for r in spec.expand() if (r.key, r.seed) in done)
    futures: list[Future] = [executor.submit(execute, task) for task in plan(spec, done, workers, max_batch)]
    added = 0
    try:
        for future in as_completed(futures):
            n = store.add(future.result())
            added += n
            if progress is not None:
                progress(n)
    finally:
        for future in futures:
            future.cancel()
    return SweepOutcome(total, before, added)
