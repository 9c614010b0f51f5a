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

import numpy as np

from ..backend import get_backend, to_numpy
from ..errors import OvertensorError
from ..result import DecompositionResult, History
from ..tensors.kernels import FactoredOp, ShiftedOp, map_arrays
from ..tensors.parameterization import check_signs, model_parts
from ..tensors.symcp import SymCP
from .descent import DescentConfig, Recorder, descend
from .gd import check_common, initial_params
from .lazy import Tangent
from .problem import Problem

__all__ = ["solve_batch", "gauss_newton_norm"]

#: ``α`` when none is given: large enough that the run is lazy (movement ~ 1e-2), see the docstring.
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
    _masses, directions, norms = model_parts(W0, order)
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
    alpha: float = DEFAULT_ALPHA,
    step_size: float | None = None,
    init_scale: float | None = None,
    max_steps: int = 10_000,
    tol: float = 1e-4,
    record_every: int = 10,
    signs: str | Sequence[float] | None = None,
    backend: str = "numpy",
    device: str | None = None,
    dtype: str = "float64",
    progress: Callable[[int], None] | None = None,
) -> list[DecompositionResult]:
    """Gradient descent on the ``α``-scaled, centred model from a unit-scale start.

    Parameters
    ----------
    alpha : float, the scale ``α > 0`` (default 100: lazy; ``α = 1`` is
        ordinary training of ``T(W) - T(W_0)``)
    step_size : float, default ``0.5 / (λ_max(J_0ᵀ J_0) + l² ‖T*‖ / α)``, the
        Gauss-Newton curvature at ``W_0`` plus a bound on the residual's curvature,
        each run its own (so a batched run equals its single run)
    init_scale : float, norm of the rows of ``W_0``, default ``‖T*‖^{1/2}``
        (every component starts with mass ``‖T*‖``)
    max_steps, tol, record_every : as for ``gd``; ``tol`` applies to the error below
    signs : None, ``"half"`` or ``m`` values of +1/-1: a signed model, as for ``gd``
    backend, device, dtype : where the loop runs, as for ``gd`` (the step-size estimate and
        the results are NumPy)

    Returns
    -------
    One result per run with ``relative_error = ‖α(T(W) - T(W_0)) - T*‖ / ‖T*‖``,
    ``model = α(T(W) - T(W_0))`` as a SymCP (``2m`` terms), ``params = W``;
    ``info["movement"] = ‖W - W_0‖ / ‖W_0‖``, also a history column.
    """
    if not (np.isfinite(alpha) and alpha > 0):
        raise OvertensorError(f"alpha must be a finite number > 0, got {alpha!r}")
    check_common(step_size=step_size, reg=0.0, tol=tol, max_steps=max_steps, record_every=record_every,
                 init_scale=init_scale)
    B, l = problem.size, problem.order
    sigma = check_signs(signs, problem.components)
    norm = problem.target_norm
    scales = np.full(B, init_scale) if init_scale else np.sqrt(norm)
    W0 = initial_params(problem, scales)
    masses0, directions0, _ = model_parts(W0, l)
    if sigma is not None:
        masses0 = sigma * masses0
    shifted = ShiftedOp(problem.op, np.full(B, 1.0 / alpha), FactoredOp(masses0, directions0, l))
    shifted_sq = np.asarray(shifted.norm_sq())
    # relative errors in descend are ‖T(W) - T_shift‖ / ‖T_shift‖; ours are α ‖T(W) - T_shift‖ / ‖T*‖
    to_ours = alpha * np.sqrt(shifted_sq) / norm
    if step_size is None:
        etas = np.array([DEFAULT_STEP / (gauss_newton_norm(W0[b], l, sigma) + l**2 * norm[b] / alpha)
                         for b in range(B)])
    else:
        etas = np.full(B, float(step_size))
    config = DescentConfig(etas, 0.0, tol / to_ours, max_steps, record_every, signs=sigma)
    W0_norm = np.linalg.norm(W0, axis=(1, 2))

    def movement(b: int, W_b: np.ndarray) -> dict[str, float]:
        return {"movement": float(np.linalg.norm(to_numpy(W_b) - W0[b]) / W0_norm[b])}

    on = get_backend(backend, device, dtype)
    start = time.perf_counter()
    recorder = Recorder(B, start, observe=movement)
    out = descend(on.asarray(W0), map_arrays(shifted, on.asarray), on.asarray(shifted_sq), config, recorder,
                  progress=progress)
    W = to_numpy(out.W).astype(np.float64)
    seconds = time.perf_counter() - start
    results = []
    for b in range(B):
        masses, directions, _ = model_parts(W[b], l)
        masses = masses if sigma is None else sigma * masses
        model = SymCP(alpha * np.concatenate([masses, -masses0[b]]), np.concatenate([directions, directions0[b]]), l)
        rows = [{**row, "relative_error": row["relative_error"] * to_ours[b]} for row in recorder.rows[b]]
        rel = float(out.relative_error[b] * to_ours[b])
        results.append(DecompositionResult(
            model=model.normalize(), relative_error=rel, converged=rel <= tol, steps=int(out.steps[b]),
            seconds=seconds, method="lazy_gd", components=problem.components, history=History.from_rows(rows),
            params=W[b],
            info={"alpha": float(alpha), "step_size": float(etas[b]), "init_scale": float(scales[b]),
                  "interrupted": out.interrupted, "backend": backend, "dtype": dtype, **movement(b, W[b])},
        ))
    return results
