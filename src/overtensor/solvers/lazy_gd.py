r"""Scaled lazy training (Chizat & Bach): gradient descent on ``α (T(W) - T(W_0))``.

From a unit-scale start ``W_0`` (the seed's directions, as in
:mod:`~overtensor.solvers.gd`, with norm ``init_scale``) minimize

    L_α(W) = (1/2α²) ‖α (T(W) - T(W_0)) - T*‖² = ½ ‖T(W) - (T*/α + T(W_0))‖²,

which is plain gradient descent (:func:`~overtensor.solvers.descent.descend`)
on the shifted target ``T*/α + T(W_0)`` (a :class:`~overtensor.tensors.kernels.ShiftedOp`):

    W_{t+1} = W_t - η ∇L_α(W_t).

As ``α`` grows the target moves by ``O(1/α)``, so ``‖W - W_0‖ / ‖W_0‖ = O(1/α)``
(lazy training) and the error ``‖α(T(W) - T(W_0)) - T*‖ / ‖T*‖`` tends to the
tangent-space projection residual computed by :mod:`.lazy`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..backend import to_numpy
from ..tensors.kernels import FactoredOp, ShiftedOp, map_arrays
from ..tensors.parameterization import check_signs, model_parts
from ..result import DecompositionResult, History
from ..tensors.symcp import SymCP
from .base import initial_params
from .descent import DescentConfig, Outcome, Recorder, descend
from .lazy import Tangent
from .problem import Problem

__all__ = ["solve_batch", "gauss_newton_norm"]

#: The default ``α`` (:class:`~overtensor.solvers.options.LazyGD`): large enough that the run is lazy
#: (movement ~ 1e-2), see the docstring.
DEFAULT_ALPHA = 100.0
#: ``η = DEFAULT_STEP / (λ_max(J_0ᵀ J_0) + l² ‖T*‖ / α)`` when no step size is given.
DEFAULT_STEP = 0.5


def gauss_newton_norm(W0: np.ndarray, order: int, signs: np.ndarray | None = None) -> float:
    """``λ_max(J_0ᵀ J_0)``: the largest curvature of ``½‖T(W) - T‖²`` at a fit, at ``W_0 (m, d)``.

    ``J_0 U = A(D U)`` with ``A`` the tangent map of :class:`~overtensor.solvers.lazy.Tangent`
    and ``D_i u = σ_i n_i (l u + (2 - l) <w̄_i, u> w̄_i)``, the derivative of the
    balanced component ``σ_i ‖w‖^{2-l} w^{⊗l}``; so ``J_0ᵀ J_0 = D K D``. One
    Lanczos run (SciPy ``eigsh``) from a fixed start.
    """
    m, d = W0.shape
    masses, directions, norms = model_parts(W0, order)
    tangent = Tangent.at(directions, order)
    if signs is not None:
        norms = signs * norms

    from scipy.sparse.linalg import LinearOperator, eigsh  # here: importing it takes 0.2 s

    def D(U: np.ndarray) -> np.ndarray:
        along = np.sum(U * directions, axis=1, keepdims=True) * directions
        return norms[:, None] * (order * U + (2 - order) * along)

    op = LinearOperator((m * d, m * d), dtype=np.float64,
                        matvec=lambda x: D(tangent.gram(D(x.reshape(m, d)))).ravel())
    return float(eigsh(op, k=1, which="LA", v0=np.ones(m * d), tol=1e-3, return_eigenvectors=False)[0])


def solve_batch(
    problem: Problem,
    *,
    alpha: float,
    step_size: float | None,
    init_scale: float | None,
    max_steps: int,
    tol: float,
    record_every: int,
    signs: str | Sequence[float] | None,
    progress: Callable[[int], None] | None = None,
) -> list[DecompositionResult]:
    """Gradient descent on the ``α``-scaled, centred model from a unit-scale start.

    The options, validated and with every default filled in, are those of
    :class:`overtensor.solvers.options.LazyGD` (call through :func:`overtensor.decompose`);
    ``step_size = None`` is resolved per run (:data:`DEFAULT_STEP` over the Gauss-Newton
    curvature at ``W_0``, :func:`gauss_newton_norm`, plus ``l² ‖T*‖ / α``), ``init_scale =
    None`` to ``‖T*‖^{1/2}``. ``tol`` applies to the error below. The step-size estimate and
    the results are NumPy; the loop runs on the problem's arrays (:attr:`Problem.arrays`).

    Returns
    -------
    One result per run with ``relative_error = ‖α(T(W) - T(W_0)) - T*‖ / ‖T*‖``,
    ``model = α(T(W) - T(W_0))`` as a SymCP (``2m`` terms), ``params = W``;
    ``info["movement"] = ‖W - W_0‖ / ‖W_0‖``, also a history column.
    """
    sigma = check_signs(signs, problem.components)
    scales = np.full(problem.size, init_scale) if init_scale else np.sqrt(problem.target_norm)
    W0 = initial_params(problem, scales)
    centred = _Centred.at(problem, W0, alpha, sigma)
    etas = _step_sizes(problem, W0, alpha, sigma) if step_size is None else np.full(problem.size, float(step_size))
    config = DescentConfig(etas, 0.0, tol / centred.to_ours, max_steps, record_every, signs=sigma)
    W0_norm = np.linalg.norm(W0, axis=(1, 2))

    def movement(b: int, W_b: np.ndarray) -> dict[str, float]:
        return {"movement": float(np.linalg.norm(to_numpy(W_b) - W0[b]) / W0_norm[b])}

    on = problem.arrays
    start = time.perf_counter()
    recorder = Recorder(problem.size, start, observe=movement)
    out = descend(on.asarray(W0), map_arrays(centred.op, on.asarray), on.asarray(centred.op_sq), config, recorder,
                  progress=progress)
    W, seconds = to_numpy(out.W).astype(np.float64), time.perf_counter() - start
    return [
        centred.result(problem, b, W[b], out, recorder.rows[b], seconds, tol,
                       {"alpha": float(alpha), "step_size": float(etas[b]), "init_scale": float(scales[b]),
                        "interrupted": out.interrupted, "backend": problem.backend, "dtype": problem.dtype, **movement(b, W[b])})
        for b in range(problem.size)]


def _step_sizes(problem: Problem, W0: np.ndarray, alpha: float, signs: np.ndarray | None) -> np.ndarray:
    """``(B,)`` default steps ``0.5 / (λ_max(J_0ᵀ J_0) + l² ‖T*‖ / α)``, each run its own."""
    l, norm = problem.order, problem.target_norm
    return np.array([DEFAULT_STEP / (gauss_newton_norm(W0[b], l, signs) + l**2 * norm[b] / alpha)
                     for b in range(problem.size)])


class _Centred(NamedTuple):
    """The shifted target ``T*/α + T(W_0)`` of a batch, and how its errors map back to ours.

    masses0, directions0 : (B, m), (B, m, d), the model at ``W_0`` (signed weights);
    to_ours : (B,), ``α ‖T_shift‖ / ‖T*‖``: descend's relative errors are
    ``‖T(W) - T_shift‖ / ‖T_shift‖``, ours ``α ‖T(W) - T_shift‖ / ‖T*‖``
    """

    op: ShiftedOp
    op_sq: np.ndarray
    to_ours: np.ndarray
    masses0: np.ndarray
    directions0: np.ndarray
    alpha: float
    signs: np.ndarray | None

    @classmethod
    def at(cls, problem: Problem, W0: np.ndarray, alpha: float, signs: np.ndarray | None) -> "_Centred":
        masses0, directions0, _ = model_parts(W0, problem.order)
        if signs is not None:
            masses0 = signs * masses0
        shifted = ShiftedOp(problem.op, np.full(problem.size, 1.0 / alpha),
                            FactoredOp(masses0, directions0, problem.order))
        shifted_sq = np.asarray(shifted.norm_sq())
        return cls(shifted, shifted_sq, alpha * np.sqrt(shifted_sq) / problem.target_norm, masses0, directions0,
                   alpha, signs)

    def result(self, problem: Problem, b: int, W: np.ndarray, out: Outcome, rows: list[dict[str, float]],
               seconds: float, tol: float, info: dict[str, Any]) -> DecompositionResult:
        """Run ``b`` (parameters ``W (m, d)``) as a result with ``model = α(T(W) - T(W_0))``, in our errors."""
        l, alpha, scale = problem.order, self.alpha, self.to_ours[b]
        masses, directions, _ = model_parts(W, l)
        masses = masses if self.signs is None else self.signs * masses
        model = SymCP(alpha * np.concatenate([masses, -self.masses0[b]]),
                      np.concatenate([directions, self.directions0[b]]), l)
        rel = float(out.relative_error[b] * scale)
        return DecompositionResult(
            model=model.normalize(), relative_error=rel, converged=rel <= tol, steps=int(out.steps[b]),
            seconds=seconds, method="lazy_gd", components=problem.components,
            history=History.from_rows([{**row, "relative_error": row["relative_error"] * scale} for row in rows]),
            params=W, info=info)
