r"""Over-parameterized descent, then ``recover``, then a second-order polish: the exact-answer pipeline.

1. a dense target is compressed to its column space (:func:`~overtensor.tensors.compress.compress`):
   ``T_c (k̂,)*l``, so every later step costs ``O(m k̂^l)``;
2. ``decompose(T_c, m, method)`` (any first-order method, e.g. ``gd``) reaches the basin;
3. :func:`~overtensor.analysis.recovery.recover` merges the ``m`` components into ``r̂``;
4. :func:`~overtensor.analysis.recovery.polish` (Levenberg–Marquardt) fits them at ``m = r̂``;
   (b) while that fit is not exact, the leading rank-one term of the residual (one round
   of the power method) is added and all polished again, kept if the error falls by 10%
   or more: a descent that stopped on a plateau with a true component unfit (a saddle,
   where gd can sit for 10^4 steps) is finished by the polish instead of by more steps;
5. while the fit is exact (relative error ``<= exact_tol``), one component fewer is tried,
   the closest pair merged or else the lightest dropped, and kept if its polish is exact
   too: above the rank, exact fits are not unique (components can split a true one's
   span), and the smallest exact ``r̂`` is the true rank of a generic low-rank target;
6. the ``r̂`` components are mapped back by ``U`` and polished once more on the full
   target (a no-op when they already fit it to ``tol``).

The reported error is :func:`~overtensor.tensors.residual.residual_norm` on the full target.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .analysis.recovery import recover
from .api import decompose
from .errors import OvertensorError
from .result import DecompositionResult, History
from .solvers.newton import check_options, solve_batch
from .solvers.problem import make_problem
from .tensors.clustering import merge_clusters
from .tensors.compress import Compression, compress
from .tensors.dense import DenseSymTensor, Tensor, symmetrize
from .tensors.residual import dense_array, relative_residual
from .tensors.symcp import SymCP

__all__ = ["pipeline", "polish", "fewer_components"]


def fewer_components(model: SymCP) -> list[SymCP]:
    """Candidates with one component fewer: the closest pair merged, then the lightest dropped.

    The pair with the largest ``cos`` (``|cos|`` for even ``l``, the second flipped when
    negative) becomes its mass-weighted mean direction ``ū`` with weight
    ``Σ λ_i <v̄_i, ū>^l``, as in :func:`~overtensor.analysis.recovery.recover`.
    """
    canon = model.normalize()
    n, l = canon.rank, canon.order
    if n < 2:
        return []
    C = canon.vectors @ canon.vectors.T
    score = np.abs(C) if l % 2 == 0 else np.array(C)
    np.fill_diagonal(score, -np.inf)
    i, j = np.unravel_index(np.argmax(score), score.shape)
    signs = np.array([1.0, -1.0 if l % 2 == 0 and C[i, j] < 0 else 1.0])
    mean, _, projected = merge_clusters(canon.weights[[i, j]], canon.vectors[[i, j]], np.zeros(2, dtype=int),
                                        signs, l)
    rest = np.setdiff1d(np.arange(n), [i, j])
    merged = SymCP(np.concatenate([canon.weights[rest], projected]), np.concatenate([canon.vectors[rest], mean]), l)
    keep = np.setdiff1d(np.arange(n), [int(np.argmin(np.abs(canon.weights)))])
    return [merged, SymCP(canon.weights[keep], canon.vectors[keep], l)]


def _prune(fit: DecompositionResult, target: Tensor, exact_tol: float,
           polish_options: dict[str, Any]) -> tuple[DecompositionResult, list[DecompositionResult]]:
    """Step 5 of the module docstring: drop components while an exact fit stays exact.

    Returns the last exact fit (or ``fit`` itself) and every polish run on the way.
    """
    runs: list[DecompositionResult] = []
    # a trial that will be exact converges superlinearly; one that lowers ‖R‖ by less than 1% a
    # step is heading for an inexact stationary point, and 30 steps are plenty either way
    trial_options = {**polish_options, "ftol": max(polish_options["ftol"], 1e-2), "max_steps": 30}
    while fit.relative_error <= exact_tol:
        for candidate in fewer_components(fit.model):
            trial = polish(candidate, target, **trial_options)
            runs.append(trial)
            if trial.relative_error <= exact_tol:
                fit = trial
                break
        else:
            return fit, runs
    return fit, runs


def _residual(target: Tensor, model: SymCP) -> Tensor:
    """``T* - model`` as a tensor the power method takes: factored if the target is, else dense."""
    if isinstance(target, SymCP):
        return target - model
    return DenseSymTensor(symmetrize(target.array - dense_array(model)))


def _grow(fit: DecompositionResult, target: Tensor, exact_tol: float, limit: int, seed: int,
          polish_options: dict[str, Any]) -> tuple[DecompositionResult, list[DecompositionResult]]:
    """Step 4b of the module docstring: add the residual's leading rank-one term while it pays.

    ``R = T* - T(W)``; ``λ x^{⊗l}`` from one round of the power method on ``R``
    (:mod:`~overtensor.solvers.power`); the polished ``r̂ + 1`` components replace the fit
    when their error is at most 0.9 of it (one of ``k`` equal missing components lowers the
    error by ``sqrt(1 - 1/k)``, 0.89 at ``k = 5``; the best rank-one term of Gaussian noise in
    ``k̂^3`` entries takes only ~``(3/k̂)²`` of its energy). At most ``limit`` additions.
    """
    runs: list[DecompositionResult] = []
    for k in range(limit):
        if fit.relative_error <= exact_tol:
            break
        term = decompose(_residual(target, fit.model), 1, "power", seed=seed + k).model
        trial = polish(fit.model + term, target, **polish_options)
        runs.append(trial)
        if not trial.relative_error <= 0.9 * fit.relative_error:
            break
        fit = trial
    return fit, runs


def _join(phases: list[DecompositionResult]) -> History:
    """The histories one after another (steps counted on, column ``phase``), NaN where a column is missing."""
    names = list(dict.fromkeys(n for p in phases for n in p.history.names))
    columns: dict[str, list[float]] = {n: [] for n in names + ["phase"]}
    offset = 0.0
    for k, p in enumerate(phases):
        h = p.history
        for n in names:
            col = np.asarray(h[n], dtype=float) if n in h else np.full(len(h), math.nan)
            columns[n] += list(col + offset if n == "step" else col)
        columns["phase"] += [float(k)] * len(h)
        offset += p.steps
    return History(columns)


def pipeline(target: Tensor, components: int, method: str = "gd", *, seed: int = 0, compress_dense: bool = True,
             rank_tol: float = 1e-6, mass_fraction: float = 1e-2, cos: float = 0.99, exact_tol: float = 1e-10,
             max_added: int | None = None, polish_steps: int = 100, polish_tol: float = 1e-12, ftol: float = 1e-10,
             **options: Any) -> DecompositionResult:
    """Descent with ``components`` (``m``) components, ``recover``, polish: the module docstring's steps.

    Parameters
    ----------
    target : SymCP or DenseSymTensor
    components : int, ``m`` of the descent
    method, seed, **options : the descent's, as for :func:`overtensor.decompose`
    compress_dense : bool, compress a dense target first (step 1)
    rank_tol : float, relative singular-value threshold of the compression
    mass_fraction, cos : passed to :func:`overtensor.recover`
    exact_tol : float, a fit at most this relative error is exact (step 5); 1e-10 is
        about 1e5 times the float64 rounding of a dense residual, ``eps · ‖T*‖``
    max_added : int, most components step 4b may add (default ``components``; 0 turns it off)
    polish_steps, polish_tol, ftol : the polish's ``max_steps``, ``tol``, ``ftol``

    Returns
    -------
    DecompositionResult with the ``r̂`` polished components (``method = "<method>+polish"``);
    ``relative_error`` from :func:`overtensor.tensors.residual.residual_norm` on ``target``,
    ``converged`` when it is at most ``polish_tol`` (a noisy target stops by ``ftol`` instead); the
    history has the descent and every polish (column ``phase``); ``info`` has
    ``compressed_dim``, ``descent_relative_error``, ``descent_steps``,
    ``recovered_components``, ``added_components`` (step 4b), ``polish_stop`` and ``polish_runs``.
    """
    if not (np.isfinite(exact_tol) and exact_tol >= 0):
        raise OvertensorError(f"exact_tol must be a finite number >= 0, got {exact_tol!r}")
    if max_added is not None and (isinstance(max_added, bool) or not isinstance(max_added, int) or max_added < 0):
        raise OvertensorError(f"max_added must be an integer >= 0, got {max_added!r}")
    comp: Compression | None = None
    if isinstance(target, DenseSymTensor) and compress_dense:
        comp = compress(target, rank_tol=rank_tol)
        comp = comp if comp.rank < target.dim else None  # full rank: nothing to gain
    start = time.perf_counter()
    work = comp.tensor if comp is not None else target
    descent = decompose(work, components, method, seed=seed, **options)
    opts: dict[str, Any] = {"max_steps": polish_steps, "tol": polish_tol, "ftol": ftol}
    fit = polish(recover(descent.model, mass_fraction=mass_fraction, cos=cos), work, **opts)
    recovered = fit.model.rank
    fit, grown = _grow(fit, work, exact_tol, components if max_added is None else max_added, seed, opts)
    added = fit.model.rank - recovered
    fit, tries = _prune(fit, work, exact_tol, opts)
    phases = [descent, fit]
    if comp is not None:
        fit = polish(comp.lift(fit.model), target, **opts)
        phases.append(fit)
    rel = relative_residual(fit.model, target)
    return DecompositionResult(
        model=fit.model, relative_error=rel, converged=rel <= polish_tol, steps=sum(p.steps for p in phases),
        seconds=time.perf_counter() - start, method=f"{descent.method}+polish", components=components,
        history=_join(phases), params=fit.params,
        info={"compressed_dim": comp.rank if comp is not None else target.dim,
              "descent_relative_error": descent.relative_error, "descent_steps": descent.steps,
              "descent_converged": descent.converged, "recovered_components": fit.model.rank,
              "polish_stop": fit.info["stop"], "added_components": added,
              "polish_runs": 1 + len(grown) + len(tries) + (comp is not None)},
    )


def polish(model: SymCP, target: Tensor, *, max_steps: int = 100, tol: float = 1e-12, ftol: float = 1e-10,
           xtol: float = 1e-15, cg_tol: float = 1e-10) -> DecompositionResult:
    """Levenberg–Marquardt on ``½‖T(W) - T*‖²`` from the components of ``model``, ``m = model.rank``.

    ``T(W) = Σ_i σ_i w_i^{⊗l}`` starts at ``w_i = |λ_i|^{1/l} v̄_i``, ``σ_i = sign λ_i``
    (zero components dropped); each iteration solves ``(JᵀJ + μ I) h = -Jᵀ R`` by
    preconditioned CG with matrix-free ``JᵀJ`` products (``O(m² d)``), see
    :mod:`overtensor.solvers.newton`. ``result.relative_error`` is computed without
    the difference of squares (:func:`overtensor.tensors.residual.residual_norm`), and
    ``result.info["stop"]`` names the rule that stopped: ``tol``, ``ftol``, ``xtol``
    or ``max_steps``. The same as ``decompose(target, model.rank, "polish", init=model)``.

    Parameters
    ----------
    model : SymCP, the starting components (e.g. from :func:`recover`)
    target : SymCP or DenseSymTensor
    max_steps : int, LM iterations
    tol : float, stop at relative error ``<= tol``
    ftol : float, stop once an accepted step lowers ``‖R‖`` by less than ``ftol ‖R‖``
    xtol : float, stop once the step ``‖h‖ <= xtol ‖W‖``
    cg_tol : float, relative residual at which each CG solve stops
    """
    check_options(max_steps, tol, ftol, xtol, cg_tol)  # before reading the model: spec loading relies on it
    canon = model.normalize()
    if canon.rank == 0:
        raise OvertensorError("cannot polish a model with no components")
    problem = make_problem([target], canon.rank, [0])
    return solve_batch(problem, init=canon, max_steps=max_steps, tol=tol, ftol=ftol, xtol=xtol, cg_tol=cg_tol)[0]
