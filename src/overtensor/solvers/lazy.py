r"""Lazy (NTK) training: the best fit of the target in the tangent space at a random start.

At ``W_0`` (unit directions ``w̄_i`` drawn from the seed exactly as
:mod:`~overtensor.solvers.gd` draws them) the linearized model moves only inside

    𝒯 = { A U = Σ_i sym(w̄_i^{⊗(l-1)} ⊗ u_i) : U ∈ R^{m×d} },

so the best lazy fit of ``T*`` is its orthogonal projection ``A U*``, where
``U*`` solves the normal equations ``K U = b``, ``K = A*A``, ``b = A* T*``:

    (K U)_k = (1/l) [ Σ_i G_ik^{l-1} u_i + (l-1) Σ_i G_ik^{l-2} <u_i, w̄_k> w̄_i ],   G = W̄ W̄ᵀ
    b_k     = T*(w̄_k^{⊗(l-1)}, ·)
    ‖T* - A U‖² = ‖T*‖² - 2 <b, U> + <U, K U>      (= ‖T*‖² - <b, U*> at the solution)

``A* T = (T(w̄_k^{⊗(l-1)}, ·))_k`` because ``T`` is symmetric; contracting
``sym(a^{⊗(l-1)} ⊗ u)`` with ``w̄_k`` in all slots but one gives the two terms of
``K``: ``u`` sits in the free slot (weight ``1/l``) or in one of the other
``l - 1``. Conjugate gradients (SciPy) solve ``K U = b`` matrix-free in
``O(m² d)`` per iteration; the Jacobian is never formed. Since
``dim 𝒯 <= m d`` and ``dim Sym^l(R^d) = C(d+l-1, l)``, the residual can vanish
only past ``m = C(d+l-1, l) / d``, the lazy threshold (``info["threshold"]``).

The model returned is ``A U`` itself, written exactly as ``2⌈l/2⌉`` symmetric
rank-one terms per component (:func:`derivative_rule`), so
``result.model.distance(target)`` checks the reported residual independently.
Both subtract numbers of size ``‖T*‖²``, so relative residuals below about
``1e-8`` are rounding noise (a full tangent space reports 0 to ~2e-8).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..result import DecompositionResult, History
from ..tensors.symcp import SymCP
from .base import initial_params
from .problem import Problem

__all__ = ["Tangent", "derivative_rule", "lazy_threshold", "solve_batch"]


def lazy_threshold(dim: int, order: int) -> float:
    """``C(d+l-1, l) / d``: the fewest components whose tangent space can hold ``Sym^l(R^d)``."""
    return math.comb(dim + order - 1, order) / dim


def derivative_rule(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``s_j`` and weights ``c_j`` with ``Σ_j c_j p(s_j) = p'(0)`` for every polynomial of degree ``<= l``.

    Nodes are symmetric, ``±k/h`` for ``k = 1..h``, ``h = ⌈l/2⌉``, and the
    weights odd, so even powers cancel and the ``h`` odd powers
    ``1, 3, ..., 2h-1 >= l - 1`` fix the weights (a small Vandermonde solve).
    Applied to ``p(t) = (a + t u)^{⊗l}`` it writes
    ``sym(a^{⊗(l-1)} ⊗ u) = p'(0) / l`` as ``2h`` symmetric rank-one terms.

    Returns
    -------
    nodes, weights : (2h,) arrays
    """
    h = (order + 1) // 2
    t = np.arange(1, h + 1) / h
    powers = 2 * np.arange(h)[:, None] + 1  # (h, 1): the odd moments 1, 3, ...
    c = np.linalg.solve(2 * t[None, :] ** powers, np.eye(h)[0])
    return np.concatenate([t, -t]), np.concatenate([c, -c])


@dataclass(frozen=True)
class Tangent:
    """The tangent space ``𝒯`` at unit directions ``W̄ (m, d)``, with ``G^{∘(l-1)}``, ``G^{∘(l-2)}`` cached."""

    directions: np.ndarray
    gram_l1: np.ndarray
    gram_l2: np.ndarray
    order: int

    @classmethod
    def at(cls, directions: np.ndarray, order: int) -> "Tangent":
        G = directions @ directions.T
        return cls(directions, G ** (order - 1), G ** (order - 2), order)

    def gram(self, U: np.ndarray) -> np.ndarray:
        """``K U`` for ``U (m, d)``: three ``(m × m)·(m × d)`` products."""
        W, l = self.directions, self.order
        M = U @ W.T  # M_ik = <u_i, w̄_k>
        return (self.gram_l1 @ U + (l - 1) * (self.gram_l2 * M).T @ W) / l

    def residual_sq(self, U: np.ndarray, b: np.ndarray, target_sq: float) -> float:
        """``‖T* - A U‖² = ‖T*‖² - 2<b, U> + <U, K U>``, clipped at 0."""
        return max(float(target_sq - 2 * np.vdot(b, U) + np.vdot(U, self.gram(U))), 0.0)

    def terms(self, U: np.ndarray) -> SymCP:
        """``A U = Σ_i sym(w̄_i^{⊗(l-1)} ⊗ u_i)`` exactly, as ``2⌈l/2⌉ · m`` rank-one terms.

        ``sym(w̄^{⊗(l-1)} ⊗ u) = (‖u‖ / l) Σ_j c_j (w̄ + s_j ū)^{⊗l}`` with the
        rule of :func:`derivative_rule` and ``ū = u / ‖u‖`` (zero rows drop out).
        """
        nodes, coef = derivative_rule(self.order)
        norms = np.linalg.norm(U, axis=1)
        unit = U / np.where(norms > 0, norms, 1.0)[:, None]
        vectors = self.directions[None] + nodes[:, None, None] * unit[None]  # (2h, m, d)
        weights = coef[:, None] * norms[None] / self.order  # (2h, m)
        keep = np.broadcast_to(norms > 0, weights.shape)
        return SymCP(weights[keep], vectors[keep], self.order).normalize()


def _project(tangent: Tangent, b: np.ndarray, target_sq: float, *, cg_tol: float, max_iter: int,
             record_every: int, start: float,
             progress: Callable[[int], None] | None) -> tuple[np.ndarray, int, bool, list[dict[str, float]]]:
    """Solve ``K U = b`` by CG from ``U = 0``; return ``U``, iterations, CG convergence, history rows."""
    m, d = b.shape
    from scipy.sparse.linalg import LinearOperator, cg  # here: importing it takes 0.2 s

    K = LinearOperator((m * d, m * d), matvec=lambda x: tangent.gram(x.reshape(m, d)).ravel(), dtype=np.float64)
    scale = math.sqrt(target_sq)
    rows: list[dict[str, float]] = []

    def record(it: int, U: np.ndarray) -> None:
        res = tangent.residual_sq(U, b, target_sq)
        rows.append({"step": it, "loss": 0.5 * res, "relative_error": math.sqrt(res) / scale,
                     "active": int(np.count_nonzero(np.any(U != 0, axis=1))),
                     "seconds": time.perf_counter() - start})

    count = 0

    def callback(x: np.ndarray) -> None:
        nonlocal count
        count += 1
        if count % record_every == 0:
            record(count, x.reshape(m, d))
        if progress is not None:
            progress(1)

    record(0, np.zeros_like(b))
    x, status = cg(K, b.ravel(), rtol=cg_tol, atol=0.0, maxiter=max_iter, callback=callback)
    U = x.reshape(m, d)
    if rows[-1]["step"] != count:
        record(count, U)
    return U, count, status == 0, rows


def solve_batch(
    problem: Problem,
    *,
    cg_tol: float,
    max_iter: int,
    tol: float,
    record_every: int,
    progress: Callable[[int], None] | None = None,
) -> list[DecompositionResult]:
    """Project each target onto the tangent space at its seed's random directions.

    The options (CG's ``cg_tol`` and ``max_iter``, ``tol`` for ``converged``, ``record_every``
    in CG iterations, each record one ``K`` product) are validated, defaults filled in, by
    :class:`overtensor.solvers.options.Lazy` (call through :func:`overtensor.decompose`).

    Returns
    -------
    One result per run: ``relative_error = ‖T* - P_𝒯 T*‖ / ‖T*‖`` (of the CG
    solution), ``model = P_𝒯 T*`` as a SymCP (``2⌈l/2⌉ m`` terms), ``params = U (m, d)``
    (the directions ``W̄`` are ``initial_params`` of the seed), ``steps`` = CG
    iterations; ``info`` has ``cg_iterations``, ``cg_converged``, ``threshold``
    (``C(d+l-1, l)/d``) and ``m_over_threshold``.
    """
    start = time.perf_counter()
    directions = initial_params(problem, np.ones(problem.size))  # (B, m, d), unit rows
    rhs = np.asarray(problem.op.contract(directions))  # b = A* T*: the target's contractions
    threshold = lazy_threshold(problem.dim, problem.order)
    results = []
    for b in range(problem.size):
        t0 = time.perf_counter()
        tangent = Tangent.at(directions[b], problem.order)
        U, iters, cg_ok, rows = _project(tangent, rhs[b], float(problem.target_sq[b]), cg_tol=cg_tol,
                                         max_iter=max_iter, record_every=record_every, start=start,
                                         progress=progress)
        rel = rows[-1]["relative_error"]
        results.append(DecompositionResult(
            model=tangent.terms(U), relative_error=rel, converged=rel <= tol, steps=iters,
            seconds=time.perf_counter() - t0, method="lazy", components=problem.components,
            history=History.from_rows(rows), params=U,
            info={"cg_iterations": iters, "cg_converged": cg_ok, "cg_tol": cg_tol, "threshold": threshold,
                  "m_over_threshold": problem.components / threshold},
        ))
    return results
