r"""The gradient-descent loop shared by every gradient method.

One step is the pure function :func:`gd_step`::

    W_{t+1} = W_t - η ∇L(W_t),    L(W) = ½‖T(W) - T*‖² + (λ/2)‖W‖²

:func:`descend` runs it on a batch ``W (B, m, d)`` until each run reaches its
tolerance (that run then stops moving, so a batch equals its single runs),
the step budget ends, or a run diverges. It records a history row every
``record_every`` steps and never prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from array_api_compat import device as array_device

from ..backend import Array, array_namespace, to_numpy
from ..errors import OvertensorError
from ..tensors.kernels import TargetOp, map_arrays
from ..tensors.parameterization import homogeneity
from .objective import Evaluation, evaluate
from .step import Step, balanced_step

__all__ = ["ACTIVE_THRESHOLD", "CHECK_EVERY", "DescentConfig", "Outcome", "Recorder", "descend", "gd_step"]

# A run has diverged once its relative error exceeds this (or is not finite).
DIVERGENCE_FACTOR = 1e3
#: The error is checked (convergence, divergence) every this many steps of a call, on the
#: steps a history row is due and on the last: a check costs more than a small step.
CHECK_EVERY = 8
# A component is active when its mass is at least this fraction of ‖T*‖.
ACTIVE_THRESHOLD = 1e-3


class DescentConfig(NamedTuple):
    """Settings of :func:`descend`; ``step_size`` and ``tol`` are one value or one per run, ``(B,)``."""

    step_size: float | np.ndarray
    reg: float
    tol: float | np.ndarray
    max_steps: int
    record_every: int
    parameterization: str = "balanced"
    active_threshold: float = ACTIVE_THRESHOLD
    #: ``(m,)`` fixed signs of a signed balanced model (shared by the batch), or None
    signs: np.ndarray | None = None


class _Evaluated(NamedTuple):
    """A step of the plain model, whose loss :func:`~overtensor.solvers.objective.evaluate` gives at once."""

    W: Array
    evaluation: Evaluation

    def residual_sq(self, xp: Any, target_sq: Array) -> Array:
        return self.evaluation.residual_sq

    def loss(self, xp: Any, reg: float, target_sq: Array) -> Array:
        return self.evaluation.loss


def gd_step(xp: Any, W: Array, target: TargetOp, step_size: Array | float, reg: float, parameterization: str,
            target_sq: Array, signs: Array | None = None) -> Step | _Evaluated:
    """One gradient step ``W - η ∇L(W)``; its ``residual_sq`` and ``loss`` give those at ``W``.

    ``step_size`` is a scalar or a ``(B, 1)`` array of per-run steps; ``signs (m,)`` as in
    :func:`~overtensor.solvers.objective.evaluate`. The balanced model takes the fused step of
    :mod:`overtensor.solvers.step`; the plain one forms its gradient
    (:func:`overtensor.solvers.objective.evaluate`).
    """
    if parameterization == "balanced":
        return balanced_step(xp, W, target, step_size, reg, signs)
    ev = evaluate(W, target, reg, parameterization, target_sq, signs)
    eta = step_size if isinstance(step_size, float) else step_size[..., None]
    return _Evaluated(W - eta * ev.grad, ev)


@dataclass
class Recorder:
    """Collects history rows for each run of a batch.

    ``observe(b, W_b)``, when given, adds columns to every row of run ``b``
    from its parameters ``W_b (m, d)`` (e.g. :mod:`overtensor.analysis.diagnostics`).
    """

    size: int
    start: float
    #: optional extra history columns of run ``b`` from its parameters ``W_b (m, d)``
    observe: Callable[[int, Array], Mapping[str, float]] | None = None

    def __post_init__(self) -> None:
        self.rows: list[list[dict[str, float]]] = [[] for _ in range(self.size)]

    def add(self, b: int, row: dict[str, float]) -> None:
        self.rows[b].append({**row, "seconds": time.perf_counter() - self.start})

    def extra(self, b: int, W_b: Array) -> Mapping[str, float]:
        return {} if self.observe is None else self.observe(b, W_b)


class Outcome(NamedTuple):
    """State after :func:`descend`; arrays have a leading batch axis ``B``.

    W : (B, m, d) array; steps : (B,) int, steps taken so far (offset included);
    converged : (B,) bool; relative_error : (B,) float
    """

    W: Array
    steps: np.ndarray
    converged: np.ndarray
    relative_error: np.ndarray
    interrupted: bool = False  # Ctrl-C stopped the loop; W, steps and errors are where it stood


def _check_divergence(rel: np.ndarray, steps: np.ndarray, step_size: np.ndarray) -> None:
    bad = ~(rel <= DIVERGENCE_FACTOR)  # also catches nan
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        eta = float(step_size[b])
        raise OvertensorError(
            f"gradient descent diverged at step {int(steps.max())} (relative error {rel[b]:.3g}) with "
            f"step size {eta:.3g}; try a smaller step size, e.g. {eta / 10:.3g}"
        )


class _Live(NamedTuple):
    """The runs still moving: their batch indices and their rows of the working arrays."""

    runs: np.ndarray  # (b,) int, indices into the batch
    W: Array  # (b, m, d)
    op: TargetOp
    target_sq: Array  # (b,)
    eta: Array | float  # (b, 1) step sizes, or one for all (the fast, common case)
    signs: Array | None = None  # (m,) fixed signs of a signed model, shared by the batch

    def keep(self, rows: np.ndarray) -> _Live:
        """The subset ``rows`` (indices into ``runs``); the arrays are taken only when it shrinks."""
        if rows.size == self.runs.size:
            return self
        xp = array_namespace(self.W)
        idx = xp.asarray(rows, device=array_device(self.W))

        def take(x: Array) -> Array:
            return xp.take(x, idx, axis=0)

        eta = self.eta if isinstance(self.eta, float) else take(self.eta)
        return _Live(self.runs[rows], take(self.W), map_arrays(self.op, take), take(self.target_sq), eta,
                     self.signs)


def descend(
    W: Array,
    target: TargetOp,
    target_sq: Array,
    config: DescentConfig,
    recorder: Recorder,
    *,
    steps: np.ndarray | None = None,
    running: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Run :func:`gd_step` on every run of the batch that is still ``running``.

    Parameters
    ----------
    W : (B, m, d) array
    target : operator with batch axis ``B`` (a frozen dataclass, see :func:`map_arrays`)
    target_sq : (B,) array, ``‖T*‖²``
    steps : (B,) int array, steps already taken (continues a run's step count)
    running : (B,) bool, runs to advance (default: all)
    progress : called with the number of steps done since the last call

    A run stops at the first check at which its relative error is ``<= config.tol``
    (its own), or after ``config.max_steps`` steps in this call. Checks come at the
    call's first step, every :data:`CHECK_EVERY` steps after it, at every step a
    history row is due, and at the last. A stopped run leaves the working arrays,
    so a batch costs what its moving runs cost, and each run does exactly the
    arithmetic of its single run.
    """
    xp = array_namespace(W)
    B = W.shape[0]
    steps = np.zeros(B, dtype=np.int64) if steps is None else steps.copy()
    running = np.ones(B, dtype=bool) if running is None else running.copy()
    converged = np.zeros(B, dtype=bool)
    scale = np.sqrt(to_numpy(target_sq).astype(np.float64))
    rel = np.full(B, np.nan)
    final = [W[b, ...] for b in range(B)]  # each run's parameters once it stops
    etas = np.broadcast_to(np.asarray(config.step_size, dtype=np.float64), (B,))
    tols = np.broadcast_to(np.asarray(config.tol, dtype=np.float64), (B,))
    eta = float(etas[0]) if np.all(etas == etas[0]) else xp.asarray(
        etas[:, None], dtype=W.dtype, device=array_device(W))
    signs = None if config.signs is None else xp.asarray(config.signs, dtype=W.dtype, device=array_device(W))
    everything = _Live(np.arange(B), W, target, target_sq, eta, signs)
    if not running.all():  # runs that do not move report their current error
        still = everything.keep(np.flatnonzero(~running))
        ev = evaluate(still.W, still.op, config.reg, config.parameterization, still.target_sq, signs)
        rel[still.runs] = np.sqrt(to_numpy(ev.residual_sq)) / scale[still.runs]
    live = everything.keep(np.flatnonzero(running))
    # run b is due a history row at call step k iff (steps_b + k) % record_every == 0
    phases = {int(p) for p in (-steps[running]) % config.record_every}
    pending = reported = 0  # steps not yet added to `steps`, and steps not yet passed to progress
    interrupted = False
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run overflows until its next check
        try:
            live, pending, reported = _loop(xp, live, config, recorder, progress, phases, converged, final, rel,
                                            steps, scale, etas, tols, target.order)
        except _Interrupted as stop:  # Ctrl-C: keep what the runs reached
            live, pending, reported, interrupted = stop.live, stop.pending, 0, True
            _stop_here(live, config, final, rel, scale)
    steps[live.runs] += pending
    if progress is not None and reported:
        progress(reported)
    return Outcome(xp.stack(final), steps, converged, rel, interrupted)


def _count(steps: np.ndarray, runs: np.ndarray, pending: int) -> int:
    """Add the ``pending`` steps to ``steps[runs]``; 0, the steps now pending (one call: a Ctrl-C
    lands before it or after it, never between the addition and the reset)."""
    steps[runs] += pending
    return 0


class _Interrupted(Exception):
    """A KeyboardInterrupt inside the loop, carrying the last state every live run completed."""

    def __init__(self, live: _Live, pending: int) -> None:
        self.live, self.pending = live, pending


def _stop_here(live: _Live, config: DescentConfig, final: list[Array], rel: np.ndarray, scale: np.ndarray) -> None:
    """Record the live runs' current parameters and errors as final."""
    if live.runs.size == 0:
        return
    ev = evaluate(live.W, live.op, config.reg, config.parameterization, live.target_sq, live.signs)
    rel[live.runs] = np.sqrt(to_numpy(ev.residual_sq)) / scale[live.runs]
    for j, b in enumerate(live.runs):
        final[b] = live.W[j, ...]


def _loop(xp: Any, live: _Live, config: DescentConfig, recorder: Recorder, progress: Callable[[int], None] | None,
          phases: set[int], converged: np.ndarray, final: list[Array], rel: np.ndarray, steps: np.ndarray,
          scale: np.ndarray, etas: np.ndarray, tols: np.ndarray, order: int) -> tuple[_Live, int, int]:
    """The steps of :func:`descend`; fills ``converged``, ``final``, ``rel`` and ``steps`` in place."""
    pending = reported = 0
    try:  # state changes are single assignments, so a Ctrl-C between two leaves them consistent
        for k in range(config.max_steps + 1 if live.runs.size else 0):
            out = gd_step(xp, live.W, live.op, live.eta, config.reg, config.parameterization, live.target_sq,
                          live.signs)
            last = k == config.max_steps
            if last or k % CHECK_EVERY == 0 or k % config.record_every in phases:
                pending = _count(steps, live.runs, pending)
                done = _check(recorder, live, out, last, rel, steps, scale, etas, tols, order, config)
                if done.any() or last:
                    converged[live.runs[done]] = True
                    for j in np.flatnonzero(done | last):
                        final[live.runs[j]] = live.W[int(j), ...]
                if last:
                    break
                live, pending = live._replace(W=out.W).keep(np.flatnonzero(~done)), 1
                if live.runs.size == 0:
                    break
            else:
                live, pending = live._replace(W=out.W), pending + 1
            reported += 1
            if progress is not None and reported >= config.record_every:
                progress(reported)
                reported = 0
    except KeyboardInterrupt:
        raise _Interrupted(live, pending) from None
    return live, pending, reported


def _check(recorder: Recorder, live: _Live, out: Step | _Evaluated, last: bool, rel: np.ndarray, steps: np.ndarray,
           scale: np.ndarray, etas: np.ndarray, tols: np.ndarray, order: int, config: DescentConfig) -> np.ndarray:
    """Errors at the live runs' current parameters: divergence, history rows; returns which converged."""
    xp = array_namespace(live.W)
    r = rel[live.runs] = np.sqrt(to_numpy(out.residual_sq(xp, live.target_sq))) / scale[live.runs]
    _check_divergence(r, steps, etas[live.runs])
    # tol = 0 runs the whole budget: an estimate of 0 is rounding, not an exact fit
    tol = tols[live.runs]
    done = (tol > 0) & (r <= tol)
    due = done | last | (steps[live.runs] % config.record_every == 0)
    if due.any():
        _record(recorder, live, due, out.loss(xp, config.reg, live.target_sq), rel, steps, scale, order, config)
    return done


def _record(recorder: Recorder, live: _Live, rows: np.ndarray, loss: Array, rel: np.ndarray, steps: np.ndarray,
            scale: np.ndarray, order: int, config: DescentConfig) -> None:
    """A history row for each run of ``live`` where ``rows`` (a mask over its rows) is set."""
    xp = array_namespace(live.W)
    masses = to_numpy(xp.vecdot(live.W, live.W)) ** (homogeneity(config.parameterization, order) / 2)
    loss = to_numpy(loss)
    for j in np.flatnonzero(rows):
        b = live.runs[j]
        active = int(np.sum(masses[j] >= config.active_threshold * scale[b]))
        recorder.add(b, {"step": int(steps[b]), "loss": float(loss[j]), "relative_error": float(rel[b]),
                         "active": active, **recorder.extra(b, live.W[int(j), ...])})
