r"""What every gradient method shares around :func:`~overtensor.solvers.descent.descend`.

Defaults relative to the target (``η = 0.3 / σ``, ``δ_0 = 10^{-3} ‖T*‖^{1/p}``), the
seeded random start ``W_0 = δ_0 · g_i / ‖g_i‖``, the float64 error
``‖T(W_b) - T*_b‖ / ‖T*_b‖``, and the packaging of a finished batch
(:class:`Finished`) as one :class:`~overtensor.result.DecompositionResult` per run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..backend import to_numpy
from ..result import DecompositionResult, History
from ..tensors.parameterization import homogeneity, model_parts
from ..tensors.symcp import SymCP
from .descent import Outcome
from .objective import evaluate
from .problem import Problem, random_directions, run_rng

__all__ = ["DEFAULT_INIT", "DEFAULT_STEP", "Finished", "build_results", "default_init_scale", "default_step_size",
           "finish", "initial_params", "relative_errors", "step_sizes"]

#: ``η = DEFAULT_STEP / σ`` when no step size is given, ``σ = max_{‖x‖=1} |T*(x^{⊗l})|`` (estimated):
#: a component of mass ``c`` on a direction of weight ``c`` has radial curvature ``4c``, so
#: ``η < 0.5 / c`` is needed; 0.3 leaves a margin (grid in docs/defaults.md).
DEFAULT_STEP = 0.3
#: ``δ_0 = DEFAULT_INIT · ‖T*‖^{1/p}`` when no init scale is given (``p``: the model's homogeneity).
DEFAULT_INIT = 1e-3


def default_step_size(problem: Problem, b: int) -> float:
    """``η = 0.3 / σ_b`` for run ``b`` (see :data:`DEFAULT_STEP`)."""
    return DEFAULT_STEP / float(problem.spectral_norm[b])


def step_sizes(problem: Problem, step_size: float | None) -> np.ndarray:
    """``(B,)`` step sizes: the given one for every run, or each run's default."""
    if step_size is not None:
        return np.full(problem.size, float(step_size))
    return np.array([default_step_size(problem, b) for b in range(problem.size)])


def default_init_scale(problem: Problem, b: int, parameterization: str) -> float:
    """``δ_0 = 10^{-3} ‖T*_b‖^{1/p}`` (``p``: the model's homogeneity, 2 balanced, ``l`` plain)."""
    p = homogeneity(parameterization, problem.order)
    return DEFAULT_INIT * float(problem.target_norm[b]) ** (1.0 / p)


def initial_params(problem: Problem, scales: np.ndarray) -> np.ndarray:
    """``(B, m, d)`` random directions with norms ``scales[b]``, run ``b`` drawn from ``seeds[b]``."""
    return np.stack([
        scales[b] * random_directions(run_rng(seed), problem.components, problem.dim)
        for b, seed in enumerate(problem.seeds)
    ])


def relative_errors(problem: Problem, W: np.ndarray, parameterization: str,
                    signs: np.ndarray | None = None) -> np.ndarray:
    """``‖T(W_b) - T*_b‖ / ‖T*_b‖`` for each run, in float64 NumPy: ``W (B, m, d) -> (B,)``."""
    ev = evaluate(W, problem.op, 0.0, parameterization, problem.target_sq, signs)
    return np.sqrt(ev.residual_sq) / problem.target_norm


class Finished(NamedTuple):
    """A finished batch of one descent method, ready to be packaged (:func:`build_results`).

    W : (B, m, d) float64 array; relative_error, converged, steps : (B,) arrays;
    rows : each run's history rows; signs : (m,) fixed signs of a signed model, or None
    """

    W: np.ndarray
    relative_error: np.ndarray
    converged: np.ndarray
    steps: np.ndarray
    seconds: float
    rows: list[list[dict[str, float]]]
    method: str
    parameterization: str = "balanced"
    signs: np.ndarray | None = None


def finish(problem: Problem, out: Outcome, rows: list[list[dict[str, float]]], start: float, *, method: str,
           tol: float, parameterization: str = "balanced", signs: np.ndarray | None = None) -> Finished:
    """:class:`Finished` from the loop's ``out``; below float64 the errors are recomputed in float64
    (the loop's estimate has a floor near ``sqrt(eps)``), and ``converged`` with them."""
    W = to_numpy(out.W).astype(np.float64)
    rel, converged = out.relative_error, out.converged
    if problem.dtype != "float64":
        rel = relative_errors(problem, W, parameterization, signs)
        converged = rel <= tol
    return Finished(W, rel, converged, out.steps, time.perf_counter() - start, rows, method, parameterization, signs)


def build_results(problem: Problem, done: Finished, infos: Sequence[dict[str, Any]]) -> list[DecompositionResult]:
    """One :class:`DecompositionResult` per run of ``done``, with ``infos[b]`` as run ``b``'s ``info``.

    The model keeps the components of nonzero mass; a signed model carries ``σ_i s_i``.
    """
    results = []
    for b, info in enumerate(infos):
        masses, directions, _ = model_parts(done.W[b], problem.order, done.parameterization)
        keep = masses > 0
        if done.signs is not None:
            masses = done.signs * masses
        results.append(DecompositionResult(
            model=SymCP(masses[keep], directions[keep], problem.order), relative_error=float(done.relative_error[b]),
            converged=bool(done.converged[b]), steps=int(done.steps[b]), seconds=float(done.seconds),
            method=done.method, components=problem.components, history=History.from_rows(done.rows[b]),
            params=np.array(done.W[b]), info=info,
        ))
    return results
