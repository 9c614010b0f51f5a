r"""Tensor power method with deflation (Anandkumar, Ge, Hsu, Kakade, Telgarsky 2014).

For ``k = 1..m``, on the deflated target ``T_k = T* - Σ_{j<k} λ_j x_j^{⊗l}``:

    x ← T_k(x^{⊗(l-1)}, ·) / ‖T_k(x^{⊗(l-1)}, ·)‖        from ``n_starts`` random unit starts,

until ``‖x_{t+1} - ±x_t‖ <= power_tol`` (the sign is free: for even ``l`` a
negative eigenvalue flips ``x`` each step) or ``max_iter`` iterations; keep the
start with the largest ``|T_k(x^{⊗l})|``, set ``λ_k = T_k(x_k^{⊗l})`` (for odd
``l`` the sign goes into ``x_k``, so ``λ_k > 0``) and deflate. Every start of
every run of the batch iterates together; the target is seen only through its
operator (deflation is a :class:`~overtensor.tensors.kernels.ShiftedOp`), so factored
and dense targets both work.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..tensors.kernels import FactoredOp, ShiftedOp
from ..result import DecompositionResult, History
from ..tensors.symcp import SymCP
from .problem import Problem, power_iterations, random_directions, run_rng

__all__ = ["solve_batch"]


def _deflated(problem: Problem, weights: np.ndarray, vectors: np.ndarray) -> ShiftedOp:
    """``T* - Σ_j λ_j x_j^{⊗l}`` for ``weights (B, k)``, ``vectors (B, k, d)``."""
    return ShiftedOp(problem.op, np.ones(problem.size), FactoredOp(-weights, vectors, problem.order))


def solve_batch(
    problem: Problem,
    *,
    n_starts: int,
    max_iter: int,
    power_tol: float,
    tol: float,
    progress: Callable[[int], None] | None = None,
) -> list[DecompositionResult]:
    """Greedy rank-one extraction: ``components`` rounds of power iteration and deflation.

    The options (``n_starts`` starts per component, drawn from the run's seed; ``max_iter``
    iterations per component; ``power_tol``; ``tol`` for ``converged``) are validated,
    defaults filled in, by :class:`overtensor.solvers.options.Power`.

    Returns
    -------
    One result per run: ``model = Σ_k λ_k x_k^{⊗l}`` (``m`` terms, in the order
    found), ``params`` the unit vectors ``x_k (m, d)``, ``steps`` the power
    iterations over all components, one history row per component.
    """
    B, m, d, l = problem.size, problem.components, problem.dim, problem.order
    starts = np.stack([random_directions(run_rng(s), m * n_starts, d).reshape(m, n_starts, d)
                       for s in problem.seeds])  # (B, m, S, d)
    start = time.perf_counter()
    weights, vectors = np.zeros((B, 0)), np.zeros((B, 0, d))
    steps = np.zeros(B, dtype=np.int64)
    rows: list[list[dict[str, float]]] = [[] for _ in range(B)]
    for k in range(m):
        x, lam, iters = _extract(_deflated(problem, weights, vectors), starts[:, k], max_iter, power_tol, l)
        weights = np.concatenate([weights, lam[:, None]], axis=1)
        vectors = np.concatenate([vectors, x[:, None]], axis=1)
        steps += iters
        residual_sq = np.clip(np.asarray(_deflated(problem, weights, vectors).norm_sq()), 0.0, None)
        for b in range(B):
            rows[b].append({"step": int(steps[b]), "loss": 0.5 * float(residual_sq[b]),
                            "relative_error": float(np.sqrt(residual_sq[b] / problem.target_sq[b])),
                            "active": k + 1, "seconds": time.perf_counter() - start})
        if progress is not None:
            progress(int(iters.max()))
    seconds = time.perf_counter() - start
    return [
        DecompositionResult(
            model=SymCP(weights[b], vectors[b], l), relative_error=rows[b][-1]["relative_error"],
            converged=rows[b][-1]["relative_error"] <= tol, steps=int(steps[b]), seconds=seconds,
            method="power", components=m, history=History.from_rows(rows[b]), params=vectors[b].copy(),
            info={"n_starts": n_starts, "power_tol": power_tol},
        )
        for b in range(B)
    ]


def _extract(op: ShiftedOp, starts: np.ndarray, max_iter: int, power_tol: float,
             order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One component of each run: power iteration from ``starts (B, S, d)`` on the deflated ``op``.

    Returns the best start's ``x (B, d)``, ``λ = T_k(x^{⊗l}) (B,)`` (at odd order ``λ > 0``,
    its sign moved into ``x``) and the iterations taken ``(B,)``.
    """
    X, iters = power_iterations(op, starts, max_iter, power_tol)
    values = np.asarray(op.evaluate(X))  # (B, S): T_k(x^{⊗l})
    best = np.argmax(np.abs(values), axis=1)
    rows = np.arange(X.shape[0])
    x, lam = X[rows, best], values[rows, best]
    if order % 2 == 1:  # odd order: -x carries -λ
        x, lam = x * np.sign(lam)[:, None], np.abs(lam)
    return x, lam, iters
