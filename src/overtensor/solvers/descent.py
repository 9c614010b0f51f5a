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
from typing import NamedTuple

import numpy as np

from .._array import Array, array_namespace, to_numpy
from ..errors import OvertensorError
from ..kernels import TargetOp
from ..objective import Evaluation, evaluate, model_parts

__all__ = ["DescentConfig", "Outcome", "Recorder", "descend", "gd_step"]

# A run has diverged once its relative error exceeds this (or is not finite).
DIVERGENCE_FACTOR = 1e3


class DescentConfig(NamedTuple):
    step_size: float
    reg: float
    tol: float
    max_steps: int
    record_every: int
    parameterization: str = "balanced"
    active_threshold: float = 1e-3  # mass, relative to ‖T*‖, that counts a component as active


def gd_step(W: Array, target: TargetOp, config: DescentConfig, target_sq: Array) -> tuple[Array, Evaluation]:
    """One gradient step; returns the new parameters and the evaluation at the old ones."""
    ev = evaluate(W, target, config.reg, config.parameterization, target_sq)
    return W - config.step_size * ev.grad, ev


@dataclass
class Recorder:
    """Collects history rows for each run of a batch.

    ``observe(b, W_b)``, when given, adds columns to every row of run ``b``
    from its parameters ``W_b (m, d)`` (e.g. :mod:`overtensor.diagnostics`).
    """

    size: int
    start: float
    observe: Callable[[int, Array], Mapping[str, float]] | None = None

    def __post_init__(self) -> None:
        self.rows: list[list[dict[str, float]]] = [[] for _ in range(self.size)]

    def add(self, b: int, row: dict[str, float], W: Array | None = None) -> None:
        extra = self.observe(b, W) if self.observe is not None and W is not None else {}
        self.rows[b].append({**row, **extra, "seconds": time.perf_counter() - self.start})


class Outcome(NamedTuple):
    """State after :func:`descend`; arrays have a leading batch axis ``B``.

    W : (B, m, d) array; steps : (B,) int, steps taken so far (offset included);
    converged : (B,) bool; relative_error : (B,) float
    """

    W: Array
    steps: np.ndarray
    converged: np.ndarray
    relative_error: np.ndarray


def _check_divergence(rel: np.ndarray, running: np.ndarray, step: int, step_size: float) -> None:
    bad = running & ~(np.isfinite(rel) & (rel <= DIVERGENCE_FACTOR))
    if np.any(bad):
        b = int(np.flatnonzero(bad)[0])
        raise OvertensorError(
            f"gradient descent diverged at step {step} (relative error {rel[b]:.3g}) with "
            f"step size {step_size:.3g}; try a smaller step size, e.g. {step_size / 10:.3g}"
        )


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
    target : operator with batch axis ``B``
    target_sq : (B,) array, ``‖T*‖²``
    steps : (B,) int array, steps already taken (continues a run's step count)
    running : (B,) bool, runs to advance (default: all)
    progress : called with the number of steps done since the last call

    A run stops once its relative error is ``<= config.tol`` (checked before
    each step) or after ``config.max_steps`` steps in this call.
    """
    xp = array_namespace(W)
    B = W.shape[0]
    steps = np.zeros(B, dtype=np.int64) if steps is None else steps.copy()
    running = np.ones(B, dtype=bool) if running is None else running.copy()
    converged = np.zeros(B, dtype=bool)
    scale = np.sqrt(to_numpy(target_sq))
    rel = np.full(B, np.nan)
    reported = 0
    for k in range(config.max_steps + 1):
        ev = evaluate(W, target, config.reg, config.parameterization, target_sq)
        rel = np.sqrt(to_numpy(ev.residual_sq)) / scale
        _check_divergence(rel, running, int(steps.max()), config.step_size)
        newly = running & (rel <= config.tol)
        last = k == config.max_steps
        due = running & ((steps % config.record_every == 0) | newly | last)
        if np.any(due):
            masses = to_numpy(model_parts(W, target.order, config.parameterization)[0])
            loss = to_numpy(ev.loss)
            for b in np.flatnonzero(due):
                active = int(np.sum(masses[b] >= config.active_threshold * scale[b]))
                recorder.add(b, {"step": int(steps[b]), "loss": float(loss[b]),
                                 "relative_error": float(rel[b]), "active": active}, W[b])
        converged |= newly
        running &= ~newly
        if last or not np.any(running):
            break
        move = xp.asarray(running, device=getattr(W, "device", None))[:, None, None]
        W = xp.where(move, W - config.step_size * ev.grad, W)
        steps += running
        if progress is not None and k - reported >= config.record_every:
            progress(k - reported)
            reported = k
    if progress is not None:
        progress(k - reported)
    return Outcome(W, steps, converged, rel)
