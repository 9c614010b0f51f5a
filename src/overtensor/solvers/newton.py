r"""Second-order polish: Levenberg–Marquardt on ``½‖T(W) - T*‖²`` at ``m = r̂``, ``JᵀJ`` matrix-free.

The model is ``T(W) = Σ_i σ_i w_i^{⊗l}`` with fixed signs ``σ_i = ±1`` (all ``+1`` for
odd ``l``, where ``-w`` carries the sign): no scale gauge, so ``JᵀJ`` is generically
non-singular at distinct components. With ``G = W Wᵀ`` and ``R = T(W) - T*``:

    J U          = l Σ_i σ_i sym(w_i^{⊗(l-1)} ⊗ u_i)
    (Jᵀ R)_k     = l σ_k R(w_k^{⊗(l-1)}, ·),   R(x^{⊗(l-1)}, ·) = Σ_i σ_i <w_i, x>^{l-1} w_i - T*(x^{⊗(l-1)}, ·)
    (JᵀJ U)_k    = l σ_k Σ_i σ_i [ G_ik^{l-1} u_i + (l-1) G_ik^{l-2} <u_i, w_k> w_i ]

(the lazy operator of :mod:`~overtensor.solvers.lazy` times ``l²``, with signs),
``O(m² d)`` per product; the target is seen once per iteration through its
contraction, ``O(m d^l)`` dense or ``O(m n d)`` factored. Each iteration solves

    (JᵀJ + μ I) h = -Jᵀ R

by preconditioned conjugate gradients (SciPy), the preconditioner the exact inverse
of the ``d × d`` diagonal blocks ``l ‖w_k‖^{2(l-2)} (‖w_k‖² I + (l-1) w_k w_kᵀ) + μ I``
(Sherman–Morrison), and accepts ``W + h`` when the gain ratio
``ρ = (½‖R‖² - ½‖R_new‖²) / (-gᵀh - ½ hᵀJᵀJh)`` is positive (the denominator read as
``½ hᵀ(μh - g)`` when ``h`` is a Cholesky solve, which it equals there), updating ``μ`` as
Nielsen (1999), but with ``μ ← μ max(1/10, 1 - (2ρ - 1)³)`` on acceptance (Nielsen's
floor is 1/3; 1/10 lets the damping vanish faster near a zero residual, where the
Gauss–Newton step is nearly exact: 50 instead of 73 iterations over nine polishes in a
quick count, each error falling by a growing factor), ``μ ← ν μ, ν ← 2ν`` on
rejection. ``‖R‖`` comes from :func:`~overtensor.tensors.residual.residual_norm` (no
difference of squares), so ``ρ`` stays meaningful down to relative errors of a few
``eps``; on an exactly low-rank target the convergence is superlinear (quadratic as ``μ → 0``).

Stopping rule, the first that holds: relative error ``<= tol`` (``"tol"``); an
accepted step lowered ``‖R‖`` by less than ``ftol ‖R‖`` (``"ftol"``: a stationary
point, e.g. of a noisy target); ``‖h‖ <= xtol ‖W‖`` (``"xtol"``: no step changes the
iterate, the rounding floor); ``max_steps`` iterations (``"max_steps"``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from ..errors import OvertensorError
from ..result import DecompositionResult, History
from ..tensors.dense import DenseSymTensor, Tensor
from ..tensors.residual import dense_from_factors, residual_norm, signed_factors
from ..tensors.symcp import SymCP
from .problem import Problem, Target

__all__ = ["Direction", "Jacobian", "Outcome", "solve_batch", "levenberg_marquardt", "polish_one", "split_init"]


@dataclass(frozen=True)
class Jacobian:
    """``J`` of ``T(W) = Σ_i σ_i w_i^{⊗l}`` at ``W (m, d)``.

    ``S ∘ G^{∘(l-1)}`` and ``S ∘ G^{∘(l-2)}`` are cached (``S = σσᵀ``).
    """

    W: np.ndarray
    sigma: np.ndarray
    order: int
    gram_l1: np.ndarray
    gram_l2: np.ndarray

    @classmethod
    def at(cls, W: np.ndarray, sigma: np.ndarray, order: int) -> Jacobian:
        G = W @ W.T
        low = G ** (order - 2)
        high = low * G
        if np.any(sigma < 0):  # S = σσᵀ is all ones otherwise (always, for odd l)
            S = np.outer(sigma, sigma)
            high, low = S * high, S * low
        return cls(W, sigma, order, high, low)

    def residual_contraction(self, target: Tensor) -> np.ndarray:
        """``R(w_k^{⊗(l-1)}, ·)`` for every row ``(m, d)``: model part minus the target's contraction.

        The model part ``Σ_i σ_i G_ki^{l-1} w_i`` is ``σ_k (S ∘ G^{∘(l-1)} W)_k``: the cached Gram's power,
        not a second one (``σ_k² = 1``, so the same terms, signs exact).
        """
        model = self.gram_l1 @ self.W
        if np.any(self.sigma < 0):
            model *= self.sigma[:, None]
        return model - target.op.contract(self.W)

    def gradient(self, target: Tensor) -> np.ndarray:
        """``Jᵀ R``, ``(m, d)``: the gradient of ``½‖T(W) - T*‖²``."""
        return self.order * self.sigma[:, None] * self.residual_contraction(target)

    def normal(self, U: np.ndarray) -> np.ndarray:
        """``JᵀJ U`` for ``U (m, d)``: three ``(m × m)·(m × d)`` products."""
        M = U @ self.W.T  # M_ik = <u_i, w_k>
        return self.order * (self.gram_l1.T @ U + (self.order - 1) * (self.gram_l2 * M).T @ self.W)

    @cached_property
    def gauss_newton(self) -> np.ndarray:
        """:meth:`dense`, formed once per iterate: the LM steps rejected at it only change ``μ`` (read-only)."""
        A = self.dense()
        A.setflags(write=False)
        return A

    def dense(self) -> np.ndarray:
        """``JᵀJ`` as an ``(m d, m d)`` array.

        Block ``(k, i)`` is ``l [S∘G^{l-1}]_ik I + l (l-1) [S∘G^{l-2}]_ik w_i w_kᵀ``.
        """
        m, d = self.W.shape
        l, W = self.order, self.W
        # broadcast products, not einsum: a three-operand einsum loops in C without BLAS or
        # vectorization, 1.4x slower at m d = 140; the second term is formed first and the
        # identity part added on its diagonal only (out[k, a, i, a]), one (m d)² pass fewer
        out = (((l * (l - 1)) * self.gram_l2)[:, None, :] * W.T[None, :, :])[:, :, :, None] * W[:, None, None, :]
        diagonal = np.arange(d)
        out[:, diagonal, :, diagonal] += l * self.gram_l1
        return out.reshape(m * d, m * d)

    def block_solve(self, V: np.ndarray, mu: float) -> np.ndarray:
        """``(D + μ I)⁻¹ V`` with ``D`` the ``d × d`` diagonal blocks of ``JᵀJ``: ``α I + β w wᵀ``, Sherman–Morrison."""
        l, W = self.order, self.W
        a = np.sum(W * W, axis=1)
        alpha = l * a ** (l - 1) + mu
        beta = l * (l - 1) * a ** (l - 2)
        along = np.sum(V * W, axis=1) * beta / (alpha * (alpha + beta * a))
        return V / alpha[:, None] - along[:, None] * W


#: Up to this many unknowns ``m d``, ``JᵀJ`` is formed (``O(m² d²)``) and Cholesky-factored
#: (``O((m d)³)``); above, CG. Measured (benchmarks/bench_polish.py, one step, μ = 1e-6):
#: ``m d = 200``: Cholesky 0.72 ms, CG 16.5 ms (331 iterations, m > d is ill-conditioned);
#: ``m d = 400`` (m = 10, d = 40): Cholesky 3.6 ms, CG 0.9 ms (21 iterations).
DIRECT_UNKNOWNS = 300
#: CG iterations per LM step at most: an inexact step is still a descent direction, and LM's
#: damping takes care of the rest.
MAX_CG = 500


class Direction(NamedTuple):
    """An LM step ``h (m, d)``; ``cg_iterations`` (0 for the direct solve); ``exact``: ``h`` solves
    ``(JᵀJ + μ I) h = -g`` to rounding (Cholesky), not to CG's tolerance."""

    h: np.ndarray
    cg_iterations: int
    exact: bool


def _lm_direction(jac: Jacobian, g: np.ndarray, mu: float, cg_tol: float) -> Direction:
    """``h`` solving ``(JᵀJ + μ I) h = -g``: Cholesky when small, else block-preconditioned CG."""
    m, d = g.shape
    n = m * d
    if n <= DIRECT_UNKNOWNS:
        from scipy.linalg.lapack import dpotrf, dpotrs  # imported here, as scipy.sparse.linalg below

        A = jac.gauss_newton.copy()
        A.flat[:: n + 1] += mu
        # LAPACK's Cholesky directly: what scipy.linalg.cho_factor / cho_solve call (the upper
        # triangle, the same factor bit for bit), without their wrappers' ~25 µs a call. W is
        # finite (every accepted iterate has a finite residual), and a NaN pivot fails too
        factor, info = dpotrf(A, lower=False, clean=False, overwrite_a=True)
        if info == 0:
            h, info = dpotrs(factor, -g.ravel(), lower=False)
            if info == 0:
                return Direction(h.reshape(m, d), 0, True)
        # info > 0: singular to working precision (μ ≈ 0 at a degenerate point): CG below
    from scipy.sparse.linalg import LinearOperator, cg  # 0.2 s to import: only where CG runs

    A = LinearOperator((n, n), matvec=lambda x: (jac.normal(x.reshape(m, d)) + mu * x.reshape(m, d)).ravel(),
                       dtype=np.float64)
    P = LinearOperator((n, n), matvec=lambda x: jac.block_solve(x.reshape(m, d), mu).ravel(), dtype=np.float64)
    count = 0

    def tick(_x: np.ndarray) -> None:
        nonlocal count
        count += 1

    x, _ = cg(A, -g.ravel(), rtol=cg_tol, atol=0.0, maxiter=min(10 * n, MAX_CG), M=P, callback=tick)
    return Direction(x.reshape(m, d), count, False)


class Outcome(NamedTuple):
    """What :func:`levenberg_marquardt` ends with.

    W : (m, d) array, the last accepted iterate; stop : the rule that stopped it;
    iterations : LM iterations (accepted or not); rows : history rows, the start and
    each accepted step (``step``, ``loss``, ``relative_error``, ``active``, ``seconds``,
    ``damping``, ``cg_iterations``)
    """

    W: np.ndarray
    stop: str
    iterations: int
    rows: list[dict[str, float]]


def _model(W: np.ndarray, sigma: np.ndarray, order: int) -> SymCP:
    return SymCP(sigma, W, order)


def _residual(W: np.ndarray, sigma: np.ndarray, target: Tensor) -> float:
    """``‖T(W) - T*‖`` as :func:`~overtensor.tensors.residual.residual_norm` has it; ``nan`` if ``W`` is not finite.

    A dense target takes the dense residual straight from the arrays (the same arithmetic
    without building a SymCP, which costs as much at ``k̂ = 10``).
    """
    if not np.isfinite(W).all():  # a diverged trial step: rejected by the caller
        return float("nan")
    if isinstance(target, DenseSymTensor):
        return _norm(dense_from_factors(sigma, W, target.order) - target.array)
    return residual_norm(_model(W, sigma, target.order), target)


def _norm(x: np.ndarray) -> float:
    """``np.linalg.norm(x)`` (its arithmetic: ``sqrt`` of the flattened dot product) without its wrapper."""
    flat = x.ravel(order="K")
    return math.sqrt(flat.dot(flat))


def _predicted(jac: Jacobian, g: np.ndarray, h: np.ndarray, mu: float, exact: bool) -> float:
    """The model's decrease ``-gᵀh - ½ hᵀJᵀJh``; for an exact solve of ``(JᵀJ + μI) h = -g`` it is
    ``½ hᵀ(μh - g)`` (Madsen, Nielsen, Tingleff 2004, eq. 3.15): a sum of two positive terms, without
    a ``JᵀJ`` product or its cancellation."""
    if exact:
        return 0.5 * (mu * float(np.vdot(h, h)) - float(np.vdot(g, h)))
    return -float(np.vdot(g, h)) - 0.5 * float(np.vdot(h, jac.normal(h)))


def levenberg_marquardt(W: np.ndarray, sigma: np.ndarray, target: Tensor, *, max_steps: int, tol: float,
                        ftol: float, xtol: float, cg_tol: float,
                        progress: Callable[[int], None] | None = None) -> Outcome:
    """Run the iteration of the module docstring from ``W (m, d)`` with signs ``σ (m,)``."""
    l, scale, start = target.order, target.norm(), time.perf_counter()
    if not scale > 0:  # what make_problem says, for callers without a Problem
        raise OvertensorError("the target tensor is zero; there is nothing to decompose")
    res = _residual(W, sigma, target)
    rows: list[dict[str, float]] = []

    def record(step: int, mu: float, cg_its: int) -> None:
        rows.append({"step": step, "loss": 0.5 * res**2, "relative_error": res / scale, "active": W.shape[0],
                     "seconds": time.perf_counter() - start, "damping": mu, "cg_iterations": cg_its})

    # J and the gradient at W, formed when a step is first tried from W (none is, at a start that already
    # meets tol) and kept while steps from it are rejected (W does not move, only μ)
    jac: Jacobian | None = None
    g = np.zeros(0)
    mu, nu = 1e-3 * float(np.max(l * np.sum(W * W, axis=1) ** (l - 1), initial=0.0)), 2.0
    record(0, mu, 0)
    stop, step = "max_steps", 0
    while res > tol * scale and step < max_steps:
        step += 1
        if jac is None:
            jac = Jacobian.at(W, sigma, l)
            g = jac.gradient(target)
        h, its, exact = _lm_direction(jac, g, mu, cg_tol)
        predicted = _predicted(jac, g, h, mu, exact)
        W_new = W + h
        res_new = _residual(W_new, sigma, target)
        # a non-finite res_new (an overflowing step) fails rho > 0: rejected, μ raised
        rho = 0.5 * (res - res_new) * (res + res_new) / predicted if predicted > 0 else -1.0
        if progress is not None:
            progress(1)
        if rho > 0:
            decrease = res - res_new
            W, res, jac = W_new, res_new, None
            mu, nu = mu * max(1 / 10, 1 - (2 * rho - 1) ** 3), 2.0
            record(step, mu, its)
            if res <= tol * scale:
                stop = "tol"
                break
            if decrease <= ftol * (res + decrease):
                stop = "ftol"
                break
        else:
            mu, nu = mu * nu, 2 * nu
        if _norm(h) <= xtol * _norm(W):
            stop = "xtol"
            break
    else:
        stop = "tol" if res <= tol * scale else "max_steps"
    return Outcome(W, stop, step, rows)


def split_init(init: object, order: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(W, σ)`` from a SymCP or an ``(m, d)`` array (``σ = +1``).

    A SymCP gives :func:`~overtensor.tensors.residual.signed_factors` of its canonical form.
    """
    if isinstance(init, SymCP):
        if init.order != order or init.dim != dim:
            raise OvertensorError(f"init has order {init.order}, dim {init.dim}; the target order {order}, dim {dim}")
        sigma, W = signed_factors(init.normalize())
        return np.array(W), sigma
    try:
        W = np.array(init, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise OvertensorError(f"init must be a SymCP or an (m, d) array: {exc}") from None
    if W.ndim != 2 or W.shape[1] != dim or not np.all(np.isfinite(W)):
        raise OvertensorError(f"init must be a finite (m, {dim}) array, got shape {W.shape}")
    if not np.any(W):  # J = 0 there: no step to take, and the damping's scale would be 0
        raise OvertensorError("init is all zeros; Levenberg-Marquardt needs a nonzero start")
    return W, np.ones(W.shape[0])


def solve_batch(
    problem: Problem,
    *,
    init: object,
    max_steps: int,
    tol: float,
    ftol: float,
    xtol: float,
    cg_tol: float,
    progress: Callable[[int], None] | None = None,
) -> list[DecompositionResult]:
    """Levenberg–Marquardt polish of ``init`` on each target (module docstring).

    Parameters
    ----------
    init : SymCP or (m, d) array, required; ``m`` must equal ``components``.
        A SymCP ``Σ λ_i v_i^{⊗l}`` starts at ``w_i = |λ_i|^{1/l} v̄_i`` (signs kept);
        an array is ``W`` with ``T(W) = Σ_i w_i^{⊗l}``.
    max_steps, tol, ftol, xtol, cg_tol : the stopping rules of the module docstring, validated
        with their defaults by :class:`overtensor.solvers.options.Polish` (each LM iteration:
        one target contraction, one residual, one CG solve)

    Returns
    -------
    One result per run; ``relative_error`` is cancellation-free, ``info["stop"]`` names
    the rule that stopped, ``params`` is the final ``W (m, d)``.
    """
    if init is None:
        raise OvertensorError("method polish needs init= (a SymCP or an (m, d) array); "
                              "from the CLI use --recover --polish")
    W0, sigma = split_init(init, problem.order, problem.dim)
    if W0.shape[0] != problem.components:
        raise OvertensorError(f"init has {W0.shape[0]} nonzero components but components is {problem.components}")
    return [polish_one(target, W0, sigma, max_steps=max_steps, tol=tol, ftol=ftol, xtol=xtol, cg_tol=cg_tol,
                       progress=progress) for target in problem.targets]


def polish_one(target: Target, W0: np.ndarray, sigma: np.ndarray, *, max_steps: int, tol: float, ftol: float,
               xtol: float, cg_tol: float, progress: Callable[[int], None] | None = None) -> DecompositionResult:
    """Levenberg–Marquardt from ``W0 (m, d)`` with signs ``σ (m,)`` (:func:`split_init`) on one target.

    What :func:`solve_batch` runs for each of its targets, callable without a :class:`Problem`
    (the pipeline's polishes: building one stacks and sums a dense target that the iteration never reads).
    """
    if not isinstance(target, (SymCP, DenseSymTensor)):  # as residual_norm would say on the first step
        raise OvertensorError(f"target must be a SymCP or DenseSymTensor, got {type(target).__name__}")
    if W0.shape[1] != target.dim:
        raise OvertensorError(f"init has dimension {W0.shape[1]}, the target {target.dim}")
    start = time.perf_counter()
    out = levenberg_marquardt(W0, sigma, target, max_steps=max_steps, tol=tol, ftol=ftol, xtol=xtol, cg_tol=cg_tol,
                              progress=progress)
    W, rows, rel = out.W, out.rows, out.rows[-1]["relative_error"]
    return DecompositionResult(
        model=_model(W, sigma, target.order).normalize(), relative_error=rel, converged=rel <= tol,
        steps=out.iterations, seconds=time.perf_counter() - start, method="polish", components=W0.shape[0],
        history=History.from_rows(rows), params=W,
        info={"stop": out.stop, "cg_iterations": int(sum(r["cg_iterations"] for r in rows)),
              "damping": rows[-1]["damping"]},
    )
