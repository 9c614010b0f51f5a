r"""Plain gradient descent on the over-parameterized objective.

Start from ``W_0 = δ_0 · g_i / ‖g_i‖`` (random directions, norm ``δ_0``) and
iterate ``W ← W - η ∇L(W)`` until ``‖T(W) - T*‖ / ‖T*‖ <= tol`` or ``max_steps``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from ..analysis.diagnostics import observer, truth_list
from ..errors import OvertensorError
from ..result import DecompositionResult
from ..tensors.parameterization import check_signs, homogeneity
from ..tensors.symcp import SymCP
from .base import build_results, default_init_scale, finish, initial_params, step_sizes
from .descent import DescentConfig, Recorder, descend
from ..backend import to_numpy
from ..tensors.kernels import map_arrays
from .problem import Problem
from .subspace import span_of

__all__ = ["solve_batch", "warm_start"]


def _start(problem: Problem, init: object, init_scale: float | None,
           parameterization: str) -> tuple[np.ndarray, np.ndarray]:
    """``(W_0 (B, m, d), δ_0 (B,))``: the warm start and its largest row norm, or the random draw."""
    if init is not None:
        W0 = warm_start(init, problem, parameterization)
        return W0, np.linalg.norm(W0, axis=-1).max(axis=-1)
    scales = np.array([init_scale or default_init_scale(problem, b, parameterization) for b in range(problem.size)])
    return initial_params(problem, scales), scales


def warm_start(init: object, problem: Problem, parameterization: str) -> np.ndarray:
    """``(B, m, d)`` starting parameters from ``init``, the same for every run of the batch.

    A SymCP ``Σ_i λ_i v_i^{⊗l}`` gives ``w_i = λ_i^{1/p} v̄_i`` (``p`` the model's
    homogeneity: 2 balanced, ``l`` plain), so that ``T(W) = init``; at odd order a negative
    weight is a flipped vector. An ``(m, d)`` array is taken as it is (e.g. ``result.params``).
    """
    m, d, order = problem.components, problem.dim, problem.order
    if isinstance(init, SymCP):
        if (init.order, init.dim) != (order, d):
            raise OvertensorError(f"init has order {init.order}, dim {init.dim}; the target has order {order}, dim {d}")
        canon = init.normalize()  # unit vectors; positive weights at odd order
        if np.any(canon.weights < 0):
            raise OvertensorError("init has negative weights at even order, which the unsigned model cannot hold; "
                                  "polish it instead (method 'polish')")
        W = canon.weights[:, None] ** (1.0 / homogeneity(parameterization, order)) * canon.vectors
    else:
        try:
            W = np.array(init, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise OvertensorError(f"init must be a SymCP or an (m, d) array: {exc}") from None
        if W.ndim != 2 or not np.all(np.isfinite(W)):
            raise OvertensorError(f"init must be a finite (m, d) array, got shape {W.shape}")
    if W.shape != (m, d):
        raise OvertensorError(f"init gives {W.shape[0]} components of dim {W.shape[1]}; the run has m = {m}, d = {d}")
    return np.ascontiguousarray(np.broadcast_to(W, (problem.size, m, d)))


def solve_batch(
    problem: Problem,
    *,
    step_size: float | None,
    init_scale: float | None,
    init: SymCP | np.ndarray | None,
    reg: float,
    max_steps: int,
    tol: float,
    record_every: int,
    parameterization: str,
    signs: str | Sequence[float] | None,
    truth: SymCP | Sequence[SymCP] | None,
    progress: Callable[[int], None] | None = None,
) -> list[DecompositionResult]:
    """Gradient descent from a small random initialization, for each run of the batch.

    The options, validated and with every default filled in, are those of
    :class:`overtensor.solvers.options.GD` (call through :func:`overtensor.decompose`);
    ``None`` for ``step_size`` and ``init_scale`` is resolved here
    (:func:`step_sizes`, :func:`default_init_scale`). ``init`` (:func:`warm_start`)
    starts every run of the batch from the same parameters. The loop runs on the problem's
    array library, device and dtype (:attr:`Problem.arrays`); the initial draws are
    NumPy-seeded whatever the backend, so a seed gives the same run on every backend
    (up to rounding). ``truth`` adds the :mod:`overtensor.analysis.diagnostics` columns.
    """
    sigma = check_signs(signs, problem.components, parameterization)
    etas = step_sizes(problem, step_size)
    W0, scales = _start(problem, init, init_scale, parameterization)
    config = DescentConfig(etas, reg, tol, max_steps, record_every, parameterization, signs=sigma)
    observe = None if truth is None else observer(
        truth_list(truth, problem.size, problem.dim, problem.order), W0, parameterization=parameterization)
    on = problem.arrays
    start = time.perf_counter()
    op, target_sq = problem.on(on)
    span = span_of(problem, W0)  # a factored target: the same run in the span of [W_0; A]
    if span is not None:
        op, observe = map_arrays(span.op, on.asarray), span.lift_observer(observe)
    recorder = Recorder(problem.size, start, observe)
    out = descend(on.asarray(W0 if span is None else span.reduce(W0)), op, target_sq, config, recorder,
                  progress=progress)
    if span is not None:
        out = out._replace(W=span.lift(to_numpy(out.W).astype(np.float64)))
    done = finish(problem, out, recorder.rows, start, method="gd", tol=tol,
                  parameterization=parameterization, signs=sigma)
    return build_results(problem, done, [
        {"step_size": float(etas[b]), "init_scale": float(scales[b]), "warm_start": init is not None,
         "interrupted": out.interrupted, "reg": reg, "parameterization": parameterization, "backend": problem.backend,
         "dtype": problem.dtype, "signs": None if sigma is None else sigma.tolist()}
        for b in range(problem.size)])
