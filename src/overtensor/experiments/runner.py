"""Resumable sweeps: run every ``(config, seed)`` of a spec that the store lacks.

Pending runs that differ only in their seed are grouped into tasks of at most
``max_batch`` seeds, each one :func:`overtensor.decompose_batch` call
(:func:`plan`). Tasks run in worker processes, a local
``ProcessPoolExecutor`` or a Dask cluster; the parent stores each task's
records as soon as it finishes (:func:`sweep`). A sweep stopped by Ctrl-C or a
lost executor keeps every stored run; running it again does the rest, in the
same batches. An edited spec that no longer contains the runs stored under its
name is refused (:func:`check_unchanged`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    BrokenExecutor,
    CancelledError,
    Executor,
    Future,
    ProcessPoolExecutor,
    wait,
)
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np

from ..analysis.recovery import match, recover
from ..api import decompose, decompose_batch
from ..errors import OvertensorError
from ..pipeline import polish
from ..result import DecompositionResult, History, package_versions
from ..tensors.dense import Tensor
from ..tensors.symcp import SymCP
from .amplification import trace_metrics
from .spec import Record, RunConfig, Spec, build_input, build_target
from .store import RunRecord, Store, compact_history

__all__ = ["Task", "SweepOutcome", "WorkersLost", "plan", "check_unchanged", "execute", "sweep", "local_pool",
           "dask_executor"]

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

    Each config's seeds, stored or not, are cut into chunks of
    ``min(max_batch, ceil(runs / workers))`` (``runs``: all the spec's runs), so that
    every worker gets work; a task is the pending seeds of one chunk. The chunks
    depend on the spec alone and each task is stored in one transaction, so a
    resumed sweep solves the same batches as an uninterrupted one.
    """
    configs: dict[str, tuple[RunConfig, list[int]]] = {}
    for run in spec.expand():
        seeds = configs.setdefault(run.key, (run.config, []))[1]
        if run.seed not in seeds:  # two blocks may spell the same config
            seeds.append(run.seed)
    n = sum(len(seeds) for _, seeds in configs.values())
    size = max(1, min(max_batch, math.ceil(n / max(workers, 1))))
    tasks = []
    for config, seeds in configs.values():
        for i in range(0, len(seeds), size):
            todo = tuple(s for s in seeds[i:i + size] if (config.key, s) not in done)
            if todo:
                tasks.append(Task(spec.name, config, todo, spec.record))
    return tasks


# ----------------------------------------------------------------------------- in the worker


def execute(task: Task) -> list[RunRecord]:
    """Solve one task; a run whose method raises is recorded with status ``error``."""
    start = time.perf_counter()
    config = task.config
    targets = [build_target(config, s) for s in task.seeds]
    inputs = [build_input(config, s, t) for s, t in zip(task.seeds, targets)]  # noisy if target.noise > 0
    outcomes, batch = _solve(config, inputs, targets, list(task.seeds), task.record.truth)
    wall = time.perf_counter() - start
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    versions = package_versions()
    records = []
    for seed, target, out in zip(task.seeds, targets, outcomes):
        common: dict[str, Any] = dict(
            key=config.key, seed=seed, spec=task.spec, experiment=config.experiment, label=config.label,
            method=config.method, components=config.components, config=config.model_dump(mode="json"),
            versions=versions, wall_seconds=wall, finished_at=finished)
        if isinstance(out, str):
            records.append(RunRecord(**common, status="error", error=out, relative_error=None, converged=False,
                                     steps=None, seconds=None, metrics={}, history=None, batch=1))
            continue
        records.append(RunRecord(
            **common, status="ok", error=None, relative_error=out.relative_error, converged=out.converged,
            steps=out.steps, seconds=out.seconds, metrics=_metrics(out, target, task.record, config.target.noise > 0),
            history=compact_history(out.history, task.record.history_rows) if task.record.history else None,
            batch=batch))
    return records


def _solve(config: RunConfig, targets: list[Tensor], truths: list[SymCP], seeds: list[int],
           truth: bool) -> tuple[list[DecompositionResult | str], int]:
    """One batched call; if it raises (a run diverged, targets of unequal norm...), each run alone.

    ``targets`` are what the method decomposes, ``truths`` the clean ground truths (the same
    unless the spec adds noise). Returns each run's result (polished if asked) or error message,
    and how many runs each call solved.
    """
    options: dict[str, Any] = dict(config.options)
    if len(seeds) > 1:
        with contextlib.suppress(OvertensorError):
            extra: dict[str, Any] = {"truth": truths} if truth else {}
            results = decompose_batch(targets, config.components, config.method, seeds=seeds, **options, **extra)
            return [_then_polish(config, r, t) for r, t in zip(results, targets)], len(seeds)
    out: list[DecompositionResult | str] = []
    for target, clean, seed in zip(targets, truths, seeds):
        try:
            extra = {"truth": clean} if truth else {}
            result = decompose(target, config.components, config.method, seed=seed, **options, **extra)
            out.append(_then_polish(config, result, target))
        except OvertensorError as exc:
            out.append(str(exc))
    return out, 1


def _then_polish(config: RunConfig, result: DecompositionResult, target: Tensor) -> DecompositionResult:
    """``result`` followed by recover-then-polish if the config asks for it (metrics ``polished_*``).

    The returned result keeps the method's metrics; its history continues with the
    polish phase (column ``phase``: 0 method, 1 polish; steps counted on).
    """
    if config.polish is None:
        return result
    options: dict[str, Any] = dict(config.polish)  # checked against polish's signature when the spec loaded
    polished = polish(recover(result.model), target, **options)
    h1, h2 = result.history, polished.history
    names = list(dict.fromkeys([*h1.names, *h2.names]))

    def column(h: History, name: str, offset: float = 0.0) -> list[float]:
        if name not in h:
            return [math.nan] * len(h)
        return list(np.asarray(h[name], dtype=float) + (offset if name == "step" else 0.0))

    joined: dict[str, list[Any]] = {n: column(h1, n) + column(h2, n, float(result.steps)) for n in names}
    joined["phase"] = [0] * len(h1) + [1] * len(h2)
    info = {**result.info, "polished_relative_error": polished.relative_error,
            "polished_converged": polished.converged, "polished_steps": polished.steps,
            "polished_components": polished.model.rank}
    return dataclasses.replace(result, history=History(joined), info=info)


def _metrics(result: DecompositionResult, target: SymCP, record: Record, noisy: bool = False) -> dict[str, Any]:
    """The result's summary, the worst best-correlation with a true direction, and recovery if asked."""
    metrics = {k: v for k, v in result.summary().items() if k not in ("method", "components")}
    V = result.model.vectors
    metrics["min_correlation"] = float(np.abs(target.vectors @ V.T).max(axis=1).min()) if len(V) else 0.0
    if "corr_0" in result.history:  # from the full history, before it is subsampled
        metrics.update(trace_metrics(result, target))
    if noisy:  # relative_error is the fit to the noisy input; this one, to the clean target
        metrics["clean_relative_error"] = float(result.model.distance(target) / target.norm())
    if record.recovery:
        recovered = recover(result.model)
        matched = match(recovered, target).summary()
        metrics["recovered"] = bool(matched.pop("recovered"))
        metrics.update({f"recovery_{k}": len(v) if isinstance(v, (list, tuple)) else v
                        for k, v in matched.items()})
        # the r̂ recovered components against the clean truth (E8's recovery error)
        metrics["recovered_error"] = float(recovered.distance(target) / target.norm()) if recovered.rank else 1.0
    return metrics


# ----------------------------------------------------------------------------- in the parent


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; only the parent decides what to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_workers(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start every worker now (a submit starts one while none is idle), with SIGINT blocked.

    The workers inherit the blocked mask, so Ctrl-C never reaches them, not even
    while they import, before their initializer ignores it (without this, a worker
    hit during its start prints a traceback); a Ctrl-C meanwhile reaches the parent
    when the mask is restored.
    """
    block = getattr(signal, "pthread_sigmask", None)  # POSIX only; elsewhere the initializer does it
    old = block(signal.SIG_BLOCK, {signal.SIGINT}) if block else None
    try:
        for _ in range(workers):
            pool.submit(int)
    finally:
        if block:
            block(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def local_pool(workers: int) -> Iterator[tuple[Executor, int]]:
    """A process pool (and its size) whose workers ignore Ctrl-C and are stopped if the sweep fails."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_ignore_sigint)
    try:
        _start_workers(pool, workers)
        yield pool, workers
    except BaseException:
        # Python < 3.14 has no public way to stop running tasks (3.14: terminate_workers). Once the
        # workers are gone the pool's manager thread fails every pending future and exits; a future
        # cancelled meanwhile would make it raise InvalidStateError, so none is cancelled here.
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=True)
        raise
    else:
        pool.shutdown()


@contextlib.contextmanager
def dask_executor(address: str, *, quiet: bool = False) -> Iterator[tuple[Executor, int]]:
    """A ``concurrent.futures`` view of an existing Dask cluster at ``address``, and its worker count.

    Closing the client (at the end, or on an error) releases its pending tasks on the cluster.
    ``quiet``: silence the loggers of ``distributed``, ``tornado`` and ``asyncio`` in this process
    (a lost scheduler makes them print tracebacks; the CLI reports it in one line itself).
    """
    from distributed import Client

    if quiet:
        _silence("distributed", "tornado", "asyncio")
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: not an address
        raise OvertensorError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        yield client.get_executor(pure=False), max(1, len(client.scheduler_info()["workers"]))
    finally:
        with contextlib.suppress(Exception):  # a scheduler that is gone cannot be told goodbye
            client.close(timeout=5)


def _silence(*packages: str) -> None:
    """Set the loggers of ``packages`` and of their modules to CRITICAL (some have levels of their own)."""
    import logging

    for name in [*packages, *logging.root.manager.loggerDict]:
        if name.split(".")[0] in packages:
            logging.getLogger(name).setLevel(logging.CRITICAL)


class WorkersLost(OvertensorError):
    """The executor lost a task (the Dask scheduler or a worker process stopped); stored runs are kept."""


#: How often a sweep waiting for its tasks looks at its ``stop`` event (seconds).
POLL_SECONDS = 0.1


def sweep(spec: Spec, store: Store, executor: Executor, *, workers: int = 1, max_batch: int = MAX_BATCH,
          progress: Callable[[int], None] | None = None, stop: threading.Event | None = None) -> SweepOutcome:
    """Run the spec's missing runs on ``executor`` and store each task's records as it finishes.

    ``progress`` is called with the number of runs each finished task stored.
    Once ``stop`` is set the sweep stores what has finished and raises
    ``KeyboardInterrupt``; the CLI sets it on Ctrl-C, so that the signal never
    interrupts a commit or the executor's own threads. If the executor loses a
    task, :class:`WorkersLost` is raised. On any exception the tasks still
    pending are left to the executor's owner to stop (:func:`local_pool` and
    :func:`dask_executor` do); everything stored stays.
    """
    check_unchanged(spec, store)
    store.save_spec(spec.name, spec.experiment, spec.model_dump(mode="json"))
    done = store.done()
    total = len(spec.expand())
    before = sum(1 for r in spec.expand() if (r.key, r.seed) in done)
    pending: set[Future] = set()
    for task in plan(spec, done, workers, max_batch):
        _check_stop(stop)
        pending.add(executor.submit(execute, task))
    added = 0
    while pending:
        stopping = stop is not None and stop.is_set()
        finished, pending = wait(pending, timeout=0 if stopping else POLL_SECONDS, return_when=FIRST_COMPLETED)
        added += _store(finished, store, stop, progress)
        if stopping:
            raise KeyboardInterrupt  # after storing every task that had finished
    _check_stop(stop)  # a Ctrl-C as the last task came in still means: interrupted
    return SweepOutcome(total, before, added)


def _store(finished: set[Future], store: Store, stop: threading.Event | None,
           progress: Callable[[int], None] | None) -> int:
    """Store the records of the finished tasks, those that succeeded first (none may be dropped
    when a lost one raises). Returns the number of runs added."""
    added = 0
    for future in sorted(finished, key=lambda f: f.cancelled() or f.exception() is not None):
        n = store.add(_records(future, stop))
        added += n
        if progress is not None:
            progress(n)
    return added


def check_unchanged(spec: Spec, store: Store) -> None:
    """Refuse to sweep an edited spec into a store that holds runs of its earlier version.

    Extending a spec (more seeds, configs or blocks) is fine: every stored run is
    still one of its runs. An edit that leaves stored runs of the same spec name
    outside the new grid (another option value, target or method), or that changes
    what is recorded, would mix two configurations in one experiment's table and
    figures: :class:`OvertensorError` naming the changed fields.
    """
    stored = store.spec_runs(spec.name)
    old = store.specs().get(spec.name)
    if not stored or old is None:
        return
    new = spec.model_dump(mode="json")
    stale = stored - {(r.key, r.seed) for r in spec.expand()}
    if not stale and old.get("record") == new["record"]:
        return
    changed = _changes(old, new) or ["the runs' configs (a new overtensor version?)"]
    shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
    what = f"{len(stale)} of its {len(stored)} stored runs are not in the edited spec" if stale else \
        f"its {len(stored)} stored runs were recorded differently"
    raise OvertensorError(f"spec {spec.name!r} changed since it was swept into {store.path} ({shown}): {what}; "
                          "sweep into another store or give the edited spec another name")


def _changes(old: Any, new: Any, path: str = "") -> list[str]:
    """Paths (``runs[0].options.tol``) where two JSON values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in sorted(set(old) | set(new), key=str)
                for c in _changes(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and \
            any(isinstance(v, dict) for v in old):
        return [c for i, (a, b) in enumerate(zip(old, new)) for c in _changes(a, b, f"{path}[{i}]")]
    return [] if old == new else [path]


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise KeyboardInterrupt


def _records(future: Future, stop: threading.Event | None) -> list[RunRecord]:
    """The task's records; :class:`WorkersLost` if the executor lost the task."""
    try:
        return future.result()
    except Exception as exc:
        if not isinstance(exc, _lost_types()):
            raise  # a bug in the worker code: keep its traceback
        _check_stop(stop)  # a worker that Ctrl-C reached before it could ignore it
        why = f"{type(exc).__name__}{': ' + str(exc) if str(exc) else ''}".splitlines()[0]
        raise WorkersLost(f"the workers stopped before a task finished ({why})") from None


def _lost_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the executor lost a task, not that the task's code failed."""
    lost: list[type[BaseException]] = [CancelledError, BrokenExecutor, OSError, TimeoutError]
    with contextlib.suppress(ImportError):
        from distributed.scheduler import KilledWorker  # a task whose workers kept dying

        lost.append(KilledWorker)
    return tuple(lost)
