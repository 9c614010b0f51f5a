r"""Plain gradient descent on the over-parameterized objective.

Start from ``W_0 = δ_0 · g_i / ‖g_i‖`` (random directions, norm ``δ_0``) and
iterate ``W ← W - η ∇L(W)`` until ``‖T(W) - T*‖ / ‖T*‖ <= tol`` or ``max_steps``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..analysis.diagnostics import observer, truth_list
from ..backend import get_backend, to_numpy
from ..errors import OvertensorError
from ..result import DecompositionResult, History
from ..tensors.parameterization import check_parameterization, check_signs, homogeneity, model_parts
from ..tensors.symcp import SymCP
from ..validation import as_number
from .descent import DescentConfig, Recorder, descend
from .objective import evaluate
from .problem import Problem, random_directions, run_rng

__all__ = ["solve_batch", "warm_start", "default_step_size", "default_init_scale", "check_common", "build_result",
           "relative_errors"]

#: ``η = DEFAULT_STEP / σ`` when no step size is given, ``σ = max_{‖x‖=1} |T*(x^{⊗l})|`` (estimated):
#: a component of mass ``c`` on a direction of weight ``c`` has radial curvature ``4c``, so
#: ``η < 0.5 / c`` is needed; 0.3 leaves a margin (grid in docs/defaults.md).
DEFAULT_STEP = 0.3
#: ``δ_0 = DEFAULT_INIT · ‖T*‖^{1/p}`` when no init scale is given (``p``: the model's homogeneity).
DEFAULT_INIT = 1e-3


def default_step_size(problem: Problem, b: int) -> float:
    return DEFAULT_STEP / float(problem.spectral_norm[b])


def step_sizes(problem: Problem, step_size: float | None) -> np.ndarray:
    """``(B,)`` step sizes: the given one for every run, or each run's default."""
    if step_size is not None:
        return np.full(problem.size, float(step_size))
    return np.array([default_step_size(problem, b) for b in range(problem.size)])


def default_init_scale(problem: Problem, b: int, parameterization: str) -> float:
    p = homogeneity(parameterization, problem.order)
    return DEFAULT_INIT * float(problem.target_norm[b]) ** (1.0 / p)


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


def build_result(problem: Problem, b: int, W: np.ndarray, *, relative_error: float, converged: bool,
                 steps: int, seconds: float, method: str, rows: list[dict[str, float]],
                 parameterization: str, info: dict[str, Any], signs: np.ndarray | None = None) -> DecompositionResult:
    """Package run ``b`` of a batch as a :class:`DecompositionResult` (``signs (m,)``: a signed model)."""
    masses, directions, _ = model_parts(W, problem.order, parameterization)
    keep = masses > 0
    if signs is not None:
        masses = signs * masses
    model = SymCP(masses[keep], directions[keep], problem.order)
    return DecompositionResult(
        model=model, relative_error=float(relative_error), converged=bool(converged), steps=int(steps),
        seconds=float(seconds), method=method, components=problem.components,
        history=History.from_rows(rows), params=np.array(W), info=info,
    )


def relative_errors(problem: Problem, W: np.ndarray, parameterization: str,
                    signs: np.ndarray | None = None) -> np.ndarray:
    """``‖T(W_b) - T*_b‖ / ‖T*_b‖`` for each run, in float64 NumPy: ``W (B, m, d) -> (B,)``."""
    ev = evaluate(W, problem.op, 0.0, parameterization, problem.target_sq, signs)
    return np.sqrt(ev.residual_sq) / problem.target_norm


def initial_params(problem: Problem, scales: np.ndarray) -> np.ndarray:
    """``(B, m, d)`` random directions with norms ``scales[b]``, run ``b`` drawn from ``seeds[b]``."""
    return np.stack([
        scales[b] * random_directions(run_rng(seed), problem.components, problem.dim)
        for b, seed in enumerate(problem.seeds)
    ])


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
    B = problem.size
    etas = step_sizes(problem, step_size)
    W0 = warm_start(init, problem, parameterization) if init is not None else None
    scales = (np.linalg.norm(W0, axis=-1).max(axis=-1) if W0 is not None else
              np.array([init_scale or default_init_scale(problem, b, parameterization) for b in range(B)]))
    config = DescentConfig(etas, reg, tol, max_steps, record_every, parameterization, signs=sigma)
    W0 = initial_params(problem, scales) if W0 is None else W0
    observe = None if truth is None else observer(
        truth_list(truth, B, problem.dim, problem.order), W0, parameterization=parameterization)
    on = get_backend(backend, device, dtype)
    start = time.perf_counter()
    recorder = Recorder(B, start, observe)
    op, target_sq = problem.on(on)
    out = descend(on.asarray(W0), op, target_sq, config, recorder,
                  progress=progress)
    W = to_numpy(out.W).astype(np.float64)
    rel, converged = out.relative_error, out.converged
    if dtype != "float64":  # the loop's estimate has a floor near sqrt(eps); report the float64 error
        rel = relative_errors(problem, W, parameterization, sigma)
        converged = rel <= tol
    seconds = time.perf_counter() - start
    return [
        build_result(problem, b, W[b], relative_error=rel[b], converged=converged[b],
                     steps=out.steps[b], seconds=seconds, method="gd", rows=recorder.rows[b],
                     parameterization=parameterization, signs=sigma,
                     info={"step_size": float(etas[b]), "init_scale": float(scales[b]), "warm_start": init is not None,
                           "interrupted": out.interrupted,
                           "reg": reg,
                           "parameterization": parameterization, "backend": backend, "dtype": dtype,
                           "signs": None if sigma is None else sigma.tolist()})
        for b in range(B)
    ]
