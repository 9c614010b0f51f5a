r"""Plain gradient descent on the over-parameterized objective.

Start from ``W_0 = δ_0 · g_i / ‖g_i‖`` (random directions, norm ``δ_0``) and
iterate ``W ← W - η ∇L(W)`` until ``‖T(W) - T*‖ / ‖T*‖ <= tol`` or ``max_steps``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from ..backend import get_backend
from ..validation import as_number
from ..analysis.diagnostics import observer, truth_list
from ..errors import OvertensorError
from ..tensors.parameterization import check_parameterization, check_signs, homogeneity
from ..result import DecompositionResult
from ..tensors.symcp import SymCP
from .base import build_results, default_init_scale, finish, initial_params, step_sizes
from .descent import DescentConfig, Recorder, descend
from .problem import Problem

__all__ = ["solve_batch", "warm_start", "check_common"]


def _positive(name: str, value: float | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    as_number(name, value)  # a string or other non-number: a one-line error, not numpy's TypeError
    ok = np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise OvertensorError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def check_common(*, step_size: float | None, reg: float, tol: float, max_steps: int, record_every: int,
                 init_scale: float | None) -> None:
    """Validate the options every gradient method shares."""
    _positive("step_size", step_size)
    _positive("init_scale", init_scale)
    _positive("reg", reg, allow_zero=True)
    _positive("tol", tol, allow_zero=True)
    for name, v in (("max_steps", max_steps), ("record_every", record_every)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "max_steps" else 1):
            raise OvertensorError(f"{name} must be an integer >= {0 if name == 'max_steps' else 1}, got {v!r}")


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
    step_size: float | None = None,
    init_scale: float | None = None,
    init: SymCP | np.ndarray | None = None,
    reg: float = 0.0,
    max_steps: int = 10_000,
    tol: float = 1e-4,
    record_every: int = 10,
    parameterization: str = "balanced",
    signs: str | Sequence[float] | None = None,
    backend: str = "numpy",
    device: str | None = None,
    dtype: str = "float64",
    truth: SymCP | Sequence[SymCP] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[DecompositionResult]:
    """Gradient descent from a small random initialization, for each run of the batch.

    Parameters
    ----------
    step_size : float, default ``0.3 / σ``, ``σ = max_{‖x‖=1} |T*(x^{⊗l})|`` (estimated by power iteration)
    init_scale : float, default ``1e-3 · ‖T*‖^{1/p}`` (``p`` = 2 balanced, ``l`` plain)
    init : SymCP or (m, d) array, optional: a warm start instead of the random draw, the same
        for every run (:func:`warm_start`; excludes ``init_scale``)
    reg : float, ``λ`` of the ℓ2 regularizer
    max_steps : int
    tol : float, stop at relative error ``<= tol`` (0: take all ``max_steps`` steps)
    record_every : int, history interval in steps
    parameterization : {"balanced", "plain"}
    signs : None, ``"half"`` or ``m`` values of +1/-1: the fixed signs ``σ_i`` of a signed
        balanced model ``Σ_i σ_i ‖w_i‖² w̄_i^{⊗l}``, for even-order targets with weights of
        both signs (``"half"``: the first ``⌈m/2⌉`` positive)
    backend : {"numpy", "torch", "array_api_strict"}, the array library that runs the loop
    device : str, e.g. ``"cuda"`` (torch only); default: the library's default device
    dtype : {"float64", "float32"}; float32 resolves relative errors down to
        about 3e-4 only (see docs/benchmarks.md)

    The initial draws are NumPy-seeded whatever the backend, so a seed gives
    the same run on every backend (up to rounding).
    truth : SymCP or one per run, optional; adds ``corr_j``, ``cone_mass_j`` and
        ``movement`` columns to the history (:mod:`overtensor.analysis.diagnostics`)
    """
    check_parameterization(parameterization)
    check_common(step_size=step_size, reg=reg, tol=tol, max_steps=max_steps, record_every=record_every,
                 init_scale=init_scale)  # before anything reads the problem: spec loading runs these checks alone
    if init is not None and init_scale is not None:
        raise OvertensorError("init and init_scale exclude each other: init sets the starting parameters")
    sigma = check_signs(signs, problem.components, parameterization)
    etas = step_sizes(problem, step_size)
    W0, scales = _start(problem, init, init_scale, parameterization)
    config = DescentConfig(etas, reg, tol, max_steps, record_every, parameterization, signs=sigma)
    observe = None if truth is None else observer(
        truth_list(truth, problem.size, problem.dim, problem.order), W0, parameterization=parameterization)
    on = get_backend(backend, device, dtype)
    start = time.perf_counter()
    recorder = Recorder(problem.size, start, observe)
    op, target_sq = problem.on(on)
    out = descend(on.asarray(W0), op, target_sq, config, recorder, progress=progress)
    done = finish(problem, out, recorder.rows, start, method="gd", tol=tol, dtype=dtype,
                  parameterization=parameterization, signs=sigma)
    return build_results(problem, done, [
        {"step_size": float(etas[b]), "init_scale": float(scales[b]), "warm_start": init is not None,
         "interrupted": out.interrupted, "reg": reg, "parameterization": parameterization, "backend": backend,
         "dtype": dtype, "signs": None if sigma is None else sigma.tolist()}
        for b in range(problem.size)])
