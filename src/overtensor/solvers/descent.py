r"""The gradient-descent loop shared by every gradient method.

One step is the pure function :func:`gd_step`::

    W_{t+1} = W_t - η ∇L_k(W_t),    L_k(W) = ½‖T(W) - T*‖² + (λ_k/2)‖W‖²

:func:`descend` runs it on a batch ``W (B, m, d)`` in epochs ``k = 0, 1, ...`` of
``H_k`` steps (by default one epoch of ``max_steps``). A method is this loop and
:class:`Hooks`: a ``λ_k`` schedule (per run, from the errors at the epoch's start),
a ``refresh`` of the parameters between epochs, a ``stop`` rule read at every check
(default: relative error ``<= tol``) and an ``on_epoch`` observer. A run that stops
leaves the working arrays, so a batch equals its single runs; the loop also ends
when no run moves, after the last epoch, at a divergence (an error) or at Ctrl-C.
It records a history row every ``record_every`` steps and never prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import numpy as np
from array_api_compat import device as array_device
from array_api_compat import is_numpy_array

from ..backend import Array, array_namespace, to_numpy
from ..errors import OvertensorError
from ..tensors.kernels import TargetOp, map_arrays
from ..tensors.parameterization import homogeneity
from .objective import Evaluation, evaluate
from .step import Step, balanced_step, stepper

__all__ = ["ACTIVE_THRESHOLD", "CHECK_EVERY", "NO_HOOKS", "DescentConfig", "EpochEnd", "Hooks", "Outcome",
           "Recorder", "descend", "gd_step", "reached_tol"]

# A run has diverged once its relative error exceeds this (or is not finite).
DIVERGENCE_FACTOR = 1e3
#: The error is checked (stopping, divergence) every this many steps of an epoch, on the
#: steps a history row is due and on the last: a check costs more than a small step.
CHECK_EVERY = 10
# A component is active when its mass is at least this fraction of ‖T*‖.
ACTIVE_THRESHOLD = 1e-3


class DescentConfig(NamedTuple):
    """Settings of :func:`descend`; ``step_size`` and ``tol`` are one value or one per run, ``(B,)``.

    ``reg`` is ``λ`` unless :attr:`Hooks.reg` schedules it; ``max_steps`` is the length of the
    one epoch unless :attr:`Hooks.epochs` gives them.
    """

    step_size: float | np.ndarray
    reg: float
    tol: float | np.ndarray
    max_steps: int
    record_every: int
    parameterization: str = "balanced"
    active_threshold: float = ACTIVE_THRESHOLD
    #: ``(m,)`` fixed signs of a signed balanced model (shared by the batch), or None
    signs: np.ndarray | None = None


def reached_tol(rel: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """The default stopping rule: ``rel <= tol``; ``tol = 0`` runs the whole budget (an estimate
    of 0 is rounding, not an exact fit). ``rel, tol : (b,)`` for the moving runs."""
    return (tol > 0) & (rel <= tol)


class EpochEnd(NamedTuple):
    """The end of epoch ``epoch`` for the runs that moved in it.

    runs : (b,) batch indices; W : (b, m, d) float64 NumPy, their parameters at its end
    (where each stopped); steps, relative_error, reg : (B,), the whole batch's counts,
    errors and this epoch's ``λ_k``
    """

    epoch: int
    runs: np.ndarray
    W: np.ndarray
    steps: np.ndarray
    relative_error: np.ndarray
    reg: np.ndarray


class Hooks(NamedTuple):
    """How a method shapes :func:`descend`; each hook is optional and runs in NumPy between epochs.

    epochs : the epochs' lengths ``H_0, H_1, ...`` (default: one of ``config.max_steps``)
    reg : ``(k, rel (B,)) -> λ_k (B,)``, the regularizer of epoch ``k`` from the errors at its
        start (``rel`` is nan before the first epoch; default ``config.reg``). A ``λ_k`` that
        differs within the batch needs the balanced model.
    refresh : ``(k, runs (b,), W (b, m, d) float64) -> W``, the moving runs' parameters
        before epoch ``k >= 1``
    stop : ``(rel (b,), tol (b,)) -> (b,) bool``, the moving runs that are done, at each check
    on_epoch : called with an :class:`EpochEnd` after each epoch (also an interrupted one)
    """

    epochs: Sequence[int] | None = None
    reg: Callable[[int, np.ndarray], np.ndarray] | None = None
    refresh: Callable[[int, np.ndarray, np.ndarray], np.ndarray] | None = None
    stop: Callable[[np.ndarray, np.ndarray], np.ndarray] = reached_tol
    on_epoch: Callable[[EpochEnd], None] | None = None


#: Plain descent: one epoch of ``max_steps`` at ``λ = reg``, stopping at ``tol``.
NO_HOOKS = Hooks()


class _Evaluated(NamedTuple):
    """A step of the plain model, whose loss :func:`~overtensor.solvers.objective.evaluate` gives at once."""

    W: Array
    evaluation: Evaluation

    def residual_sq(self, xp: Any, target_sq: Array) -> Array:
        return self.evaluation.residual_sq

    def loss(self, xp: Any, reg: float, target_sq: Array) -> Array:
        return self.evaluation.loss


def gd_step(xp: Any, W: Array, target: TargetOp, step_size: Array | float, reg: Array | float,
            parameterization: str, target_sq: Array, signs: Array | None = None, values: bool = True,
            ) -> Step | _Evaluated:
    """One gradient step ``W - η ∇L(W)``; its ``residual_sq`` and ``loss`` give those at ``W``.

    ``step_size`` (and, balanced model only, ``reg``) is a scalar or a ``(B, 1)`` array of
    per-run values; ``signs (m,)`` as in :func:`~overtensor.solvers.objective.evaluate`. The
    balanced model takes the fused step of :mod:`overtensor.solvers.step`; the plain one forms
    its gradient (:func:`overtensor.solvers.objective.evaluate`). ``values=False``: see
    :class:`~overtensor.solvers.step.StepFn`.
    """
    if parameterization == "balanced":
        return balanced_step(xp, W, target, step_size, reg, signs, values=values)
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

    def add(self, runs: Sequence[int], columns: Mapping[str, Sequence[float]], W: Array, rows: Sequence[int]) -> None:
        """A row for each run ``runs[k]``: the ``k``-th value of each column, the observed columns of
        its parameters ``W[rows[k]] (m, d)``, and the seconds since ``start`` (one clock reading)."""
        seconds, names = time.perf_counter() - self.start, list(columns)
        for b, j, *values in zip(runs, rows, *columns.values(), strict=True):
            row = dict(zip(names, values, strict=True))
            if self.observe is not None:
                row.update(self.observe(b, W[j, ...]))
            row["seconds"] = seconds
            self.rows[b].append(row)


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


def _diverged(rel: np.ndarray, steps: np.ndarray, step_size: np.ndarray) -> None:
    b = int(np.flatnonzero(~(rel <= DIVERGENCE_FACTOR))[0])  # also catches nan
    eta = float(step_size[b])
    raise OvertensorError(
        f"gradient descent diverged at step {int(steps.max())} (relative error {rel[b]:.3g}) with "
        f"step size {eta:.3g}; try a smaller step size, e.g. {eta / 10:.3g}"
    )


@dataclass
class _Runs:
    """Per-run NumPy state of one call of :func:`descend`, filled in place."""

    steps: np.ndarray  # (B,) int, steps taken (offset included)
    converged: np.ndarray  # (B,) bool, stopped by the stopping rule
    rel: np.ndarray  # (B,) relative error at the last check
    final: list[Array]  # each run's (m, d) parameters where it stopped


class _Context(NamedTuple):
    """What stays fixed during a call of :func:`descend`; the array namespace is resolved once."""

    xp: Any
    config: DescentConfig
    hooks: Hooks
    recorder: Recorder
    progress: Callable[[int], None] | None
    power: float  # the history's masses are (‖w_i‖²)^power, p/2 for a model of homogeneity p
    to_numpy: Callable[[Array], np.ndarray]  # np.asarray itself on NumPy (no per-call type test)


class _Live(NamedTuple):
    """The runs still moving: their batch indices, their rows of the working arrays and settings."""

    runs: np.ndarray  # (b,) int, indices into the batch
    W: Array  # (b, m, d), the parameters at the last check
    op: TargetOp
    target_sq: Array  # (b,)
    eta: Array | float  # (b, 1) step sizes, or one for all (the fast, common case)
    reg: Array | float  # (b, 1) λ_k, or one for all
    reg_rows: Array | float  # (b,) λ_k for the loss, or one for all
    signs: Array | None  # (m,) fixed signs of a signed model, shared by the batch
    scale: np.ndarray  # (b,) ‖T*‖
    active_at: np.ndarray  # (b, 1) the mass of an active component: active_threshold · ‖T*‖
    tol: np.ndarray  # (b,)
    stop_at: np.ndarray  # (b,) the default rule's bound: tol, or -inf where tol = 0 (never)
    etas: np.ndarray  # (b,) step sizes in NumPy, for the divergence message
    at: slice | np.ndarray  # `runs` as an index into the batch's arrays: every run, slice(None), is cheaper

    def keep(self, rows: np.ndarray) -> _Live:
        """The subset ``rows`` (indices into ``runs``); the arrays are taken only when it shrinks."""
        if rows.size == self.runs.size:
            return self
        xp = array_namespace(self.W)
        idx = xp.asarray(rows, device=array_device(self.W))

        def take(x: Array) -> Array:
            return xp.take(x, idx, axis=0)

        def some(x: Array | float) -> Array | float:
            return x if isinstance(x, float) else take(x)

        return _Live(self.runs[rows], take(self.W), map_arrays(self.op, take), take(self.target_sq), some(self.eta),
                     some(self.reg), some(self.reg_rows), self.signs, self.scale[rows], self.active_at[rows],
                     self.tol[rows], self.stop_at[rows], self.etas[rows], self.runs[rows])

    def regularized(self, xp: Any, lam: np.ndarray) -> _Live:
        """With ``λ_k = lam (b,)``: one float when the runs share it (the common case), else arrays."""
        if np.all(lam == lam[0]):
            return self._replace(reg=float(lam[0]), reg_rows=float(lam[0]))
        dev = array_device(self.W)
        return self._replace(reg=xp.asarray(lam[:, None], dtype=self.W.dtype, device=dev),
                             reg_rows=xp.asarray(lam, dtype=self.W.dtype, device=dev))


def _start(xp: Any, W: Array, target: TargetOp, target_sq: Array, config: DescentConfig) -> _Live:
    """Every run of the batch as live, with its settings in the working library."""
    B, dev = W.shape[0], array_device(W)
    etas = np.broadcast_to(np.asarray(config.step_size, dtype=np.float64), (B,))
    eta = float(etas[0]) if np.all(etas == etas[0]) else xp.asarray(etas[:, None], dtype=W.dtype, device=dev)
    signs = None if config.signs is None else xp.asarray(config.signs, dtype=W.dtype, device=dev)
    scale = np.sqrt(to_numpy(target_sq).astype(np.float64))
    tols = np.broadcast_to(np.asarray(config.tol, dtype=np.float64), (B,))
    stop_at = np.where(tols > 0, tols, -np.inf)  # reached_tol in one comparison
    return _Live(np.arange(B), W, target, target_sq, eta, float(config.reg), float(config.reg), signs, scale,
                 (config.active_threshold * scale)[:, None], tols, stop_at, etas, slice(None))


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
    hooks: Hooks = NO_HOOKS,
) -> Outcome:
    """Run :func:`gd_step` on every run of the batch that is still ``running``, epoch by epoch.

    Parameters
    ----------
    W : (B, m, d) array
    target : operator with batch axis ``B`` (a frozen dataclass, see :func:`map_arrays`)
    target_sq : (B,) array, ``‖T*‖²``
    steps : (B,) int array, steps already taken (continues a run's step count)
    running : (B,) bool, runs to advance (default: all); the others report their error
    progress : called with the number of steps done since the last call
    hooks : the epochs, ``λ_k`` schedule, refresh, stopping rule and epoch observer (:class:`Hooks`)

    A run stops at the first check at which ``hooks.stop`` says so (default: its relative
    error is ``<= config.tol``, its own), or at the end of the last epoch. Checks come at
    each epoch's first step, every :data:`CHECK_EVERY` steps after it, at every step a
    history row is due, and at its last. A stopped run leaves the working arrays, so a
    batch costs what its moving runs cost, and each run does exactly the arithmetic of
    its single run.
    """
    xp = array_namespace(W)
    B = W.shape[0]
    runs = _Runs(np.zeros(B, dtype=np.int64) if steps is None else steps.copy(), np.zeros(B, dtype=bool),
                 np.full(B, np.nan), [W[b, ...] for b in range(B)])
    running = np.ones(B, dtype=bool) if running is None else running
    ctx = _Context(xp, config, hooks, recorder, progress, homogeneity(config.parameterization, target.order) / 2,
                   np.asarray if is_numpy_array(W) else to_numpy)
    everything = _start(xp, W, target, target_sq, config)
    if not running.all():
        _stop_here(ctx, runs, everything.keep(np.flatnonzero(~running)))
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run overflows until its next check
        interrupted = _epochs(ctx, runs, everything.keep(np.flatnonzero(running)))
    return Outcome(xp.stack(runs.final), runs.steps, runs.converged, runs.rel, interrupted)


def _epochs(ctx: _Context, runs: _Runs, live: _Live) -> bool:
    """Every epoch of ``ctx.hooks``, with its ``λ_k`` and refresh; returns whether Ctrl-C ended them."""
    hooks, xp = ctx.hooks, ctx.xp
    W_end = np.empty(0)
    for k, length in enumerate(hooks.epochs or (ctx.config.max_steps,)):
        if live.runs.size == 0:
            break
        if k > 0 and hooks.refresh is not None:  # in NumPy float64, as the hooks see it
            new = hooks.refresh(k, live.runs, W_end)
            live = live._replace(W=xp.asarray(new, dtype=live.W.dtype, device=array_device(live.W)))
        lam = np.full(runs.rel.shape, float(ctx.config.reg)) if hooks.reg is None else hooks.reg(k, runs.rel.copy())
        live, moved = live.regularized(xp, lam[live.runs]), live.runs
        live, interrupted = _epoch(ctx, runs, live, int(length))
        if hooks.on_epoch is not None or hooks.refresh is not None:
            W_end = to_numpy(xp.stack([runs.final[b] for b in moved])).astype(np.float64)
            if hooks.on_epoch is not None:
                hooks.on_epoch(EpochEnd(k, moved, W_end, runs.steps.copy(), runs.rel.copy(), lam))
            W_end = W_end[np.isin(moved, live.runs)]
        if interrupted:
            return True
    return False


def _next_check(k: int, length: int, phases: tuple[int, ...], every: int) -> int:
    """The first epoch step after ``k`` that is checked: a multiple of :data:`CHECK_EVERY`, a
    step ``j`` with ``j % every`` in ``phases`` (a history row is due), or the last."""
    nxt = (k // CHECK_EVERY + 1) * CHECK_EVERY
    for p in phases:
        nxt = min(nxt, k + 1 + (p - k - 1) % every)
    return min(nxt, length)


def _epoch(ctx: _Context, runs: _Runs, live: _Live, length: int) -> tuple[_Live, bool]:
    """Up to ``length`` steps of the live runs; returns the runs still moving and whether Ctrl-C came.

    Between checks a step is one call of the resolved step function and nothing else.
    """
    every, progress = ctx.config.record_every, ctx.progress
    phases = tuple(sorted({int(p) for p in (-runs.steps[live.runs]) % every}))
    step, W, check = _stepper(ctx, live), live.W, 0
    pending = reported = 0  # steps not yet added to `runs.steps`, and steps not yet passed to progress
    try:  # state changes are single assignments, so a Ctrl-C between two leaves them consistent
        for k in range(length + 1):
            out = step(W, values=k == check)  # the target values feed the check only
            if k == check:
                pending = _count(runs.steps, live.at, pending)
                done = _check(ctx, runs, live, W, out, k == length,
                              k % every == phases[0] if len(phases) == 1 else None)
                if k == length:
                    break
                if done.any():
                    nxt = live._replace(W=out.W).keep(np.flatnonzero(~done))
                    live, W, step, pending = nxt, nxt.W, _stepper(ctx, nxt), 1
                    if live.runs.size == 0:
                        break
                else:
                    W, pending = out.W, 1
                check = _next_check(k, length, phases, every)
            else:
                W, pending = out.W, pending + 1
            reported += 1
            if progress is not None and reported >= every:
                progress(reported)
                reported = 0
        live, pending = live._replace(W=W), _count(runs.steps, live.at, pending)
        if progress is not None and reported:
            progress(reported)
    except KeyboardInterrupt:  # keep what the runs reached
        live = live._replace(W=W)
        runs.steps[live.runs] += pending
        _stop_here(ctx, runs, live)
        return live, True
    return live.keep(np.flatnonzero(~runs.converged[live.runs])), False


def _count(steps: np.ndarray, runs: slice | np.ndarray, pending: int) -> int:
    """Add the ``pending`` steps to ``steps[runs]``; 0, the steps now pending (one call: a Ctrl-C
    lands before it or after it, never between the addition and the reset)."""
    steps[runs] += pending
    return 0


def _stepper(ctx: _Context, live: _Live) -> Callable[..., Step | _Evaluated]:
    """The live runs' step as a function of ``W`` alone, made once per change of the live set."""
    c = ctx.config
    if c.parameterization == "balanced":
        return stepper(ctx.xp, live.W, live.op, live.eta, live.reg, live.signs)
    return partial(gd_step, ctx.xp, target=live.op, step_size=live.eta, reg=live.reg,
                   parameterization=c.parameterization, target_sq=live.target_sq, signs=live.signs)


def _stop_here(ctx: _Context, runs: _Runs, live: _Live) -> None:
    """Record the live runs' current parameters and errors as final."""
    if live.runs.size == 0:
        return
    ev = evaluate(live.W, live.op, ctx.config.reg, ctx.config.parameterization, live.target_sq, live.signs)
    runs.rel[live.runs] = np.sqrt(to_numpy(ev.residual_sq)) / live.scale
    for j, b in enumerate(live.runs):
        runs.final[b] = live.W[j, ...]


def _check(ctx: _Context, runs: _Runs, live: _Live, W: Array, out: Step | _Evaluated, last: bool,
           row: bool | None) -> np.ndarray:
    """Errors at the live runs' parameters ``W`` (``out`` is the step from them): divergence,
    history rows, the stopping rule, the final parameters of those that stop; returns which stop.

    ``row``: whether every live run is due a history row here, or None to read it from each
    run's step count. NumPy's C entry points (``count_nonzero``, ``add.reduce``) rather than the
    Python wrappers of ``any`` and ``sum``: for one run, the wrappers cost as much as the arithmetic.
    """
    r2 = out.residual_sq(ctx.xp, live.target_sq)
    r = runs.rel[live.at] = np.sqrt(ctx.to_numpy(r2)) / live.scale
    if np.count_nonzero(r <= DIVERGENCE_FACTOR) < r.size:  # also catches nan
        _diverged(r, runs.steps, live.etas)
    done = r <= live.stop_at if ctx.hooks.stop is reached_tol else ctx.hooks.stop(r, live.tol)
    stopping = last or np.count_nonzero(done) > 0
    if row is None:
        due = done | last | (runs.steps[live.at] % ctx.config.record_every == 0)
        row = bool(due.any())
    else:
        due = done | True if row else done | last
    if row or stopping:
        _record(ctx, runs, live, W, due, _loss(ctx.xp, out, r2, live.reg_rows))
    if stopping:
        runs.converged[live.runs[done]] = True
        for j in np.flatnonzero(done | last):
            runs.final[live.runs[j]] = W[int(j), ...]
    return done


def _loss(xp: Any, out: Step | _Evaluated, r2: Array, reg: Array | float) -> Array:
    """``½‖T(W) - T*‖² + (λ/2)‖W‖²`` at the step's start: :meth:`Step.loss` with its ``residual_sq``
    ``r2`` (already computed for the check) not computed again."""
    if isinstance(out, Step):  # NumPy's own sum (the same numbers), without the wrappers' cost
        masses = out.masses
        total = np.add.reduce(masses, axis=-1) if isinstance(masses, np.ndarray) else xp.sum(masses, axis=-1)
        return 0.5 * r2 + 0.5 * reg * total
    return out.evaluation.loss


def _record(ctx: _Context, runs: _Runs, live: _Live, W: Array, rows: np.ndarray, loss: Array) -> None:
    """A history row for each live run where ``rows`` (a mask over them) is set."""
    masses = ctx.to_numpy(ctx.xp.vecdot(W, W))
    if ctx.power != 1:
        masses = masses ** ctx.power
    idx = rows.nonzero()[0]
    at = live.runs[idx]
    columns = {"step": runs.steps[at].tolist(), "loss": ctx.to_numpy(loss)[idx].tolist(),
               "relative_error": runs.rel[at].tolist(),
               "active": (masses >= live.active_at).sum(axis=-1)[idx].tolist()}
    ctx.recorder.add(at.tolist(), columns, W, idx.tolist())
