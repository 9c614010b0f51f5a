r"""Over-parameterized descent, then ``recover``, then a second-order polish: the exact-answer pipeline.

1. a dense target is compressed to its column space (:func:`~overtensor.tensors.compress.compress`):
   ``T_c (k̂,)*l``, so every later step costs ``O(m k̂^l)``;
2. ``decompose(T_c, m, method)`` (any first-order method, e.g. ``gd``) reaches the basin;
3. :func:`~overtensor.analysis.recovery.recover` merges the ``m`` components into ``r̂``;
4. :func:`~overtensor.analysis.recovery.polish` (Levenberg–Marquardt) fits them at ``m = r̂``;
   (a) when that fit is inexact with fewer components than the rank floor (step 5), the
   missing ones are added at once from the residual's unfolding and all polished again;
   (b) while that fit is not exact, the leading rank-one term of the residual (one round
   of the power method) is added and all polished again, kept if the error falls by 10%
   or more: a descent that stopped on a plateau with a true component unfit (a saddle,
   where gd can sit for 10^4 steps) is finished by the polish instead of by more steps;
5. while the fit is exact (relative error ``<= exact_tol``) and has more components than the
   rank of the target's unfolding allows any exact fit (:func:`rank_floor`), one component fewer is tried,
   the closest pair merged or else the lightest dropped, and kept if its polish is exact
   too: above the rank, exact fits are not unique (components can split a true one's
   span), and the smallest exact ``r̂`` is the true rank of a generic low-rank target;
   first, closest pairs are merged straight down to the floor and polished once, which
   saves the trials in between when that fit is exact;
6. the ``r̂`` components are mapped back by ``U`` and polished once more on the full
   target (a no-op when they already fit it to ``tol``).

The reported error is :func:`~overtensor.tensors.residual.residual_norm` on the full target,
as the last polish (on the full target) computed it.
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
from .solvers.newton import polish_one, split_init
from .tensors.clustering import merge_clusters
from .tensors.compress import Compression, compress
from .tensors.convert import TargetLike, as_target
from .tensors.dense import DenseSymTensor, Tensor, symmetrize
from .tensors.kernels import DenseOp
from .tensors.residual import dense_array
from .tensors.symcp import SymCP

__all__ = ["pipeline", "polish", "fewer_components", "rank_floor"]


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


def rank_floor(comp: Compression, exact_tol: float, order: int) -> int:
    """A lower bound on the rank of every fit of the target exact to ``exact_tol`` (relative).

    A fit ``F`` of rank ``q`` has an unfolding of rank ``<= q``, so ``σ_{q+1}(T*_(1)) <= ‖T* - F‖``.
    A fit of the compressed ``T_c`` exact to ``exact_tol``, lifted, is within
    ``g = sqrt((exact_tol ‖T*‖)² + l · dropped²)`` of ``T*`` (Pythagoras, ``tensors/compress.py``),
    so ``q >= #{j : σ_j > g}``. The ``σ_j`` come from the eigenvalues of ``T_(1) T_(1)ᵀ``,
    each within ``d eps σ_1²``, so ``sqrt(d eps) σ_1`` is added to ``g`` before counting.
    """
    s = comp.singular_values
    norm = float(np.sqrt(np.sum(s**2)))  # ‖T*‖_F, the unfolding's Frobenius norm
    gap = math.hypot(exact_tol * norm, math.sqrt(order) * comp.dropped)
    resolution = math.sqrt(s.size * np.finfo(np.float64).eps) * float(s[0])
    return int(np.count_nonzero(s > gap + resolution))


def _prune(fit: DecompositionResult, target: Tensor, exact_tol: float, polish_options: dict[str, Any],
           floor: int = 1) -> tuple[DecompositionResult, list[DecompositionResult]]:
    """Step 5 of the module docstring: drop components while an exact fit stays exact.

    No fit with fewer than ``floor`` components is tried (:func:`rank_floor`: none can be exact),
    and with ``floor >= 2`` the closest pairs are first merged straight down to it and polished once.
    Returns the last exact fit (or ``fit`` itself) and every polish run on the way.
    """
    runs: list[DecompositionResult] = []
    # a trial that will be exact converges superlinearly; one that lowers ‖R‖ by less than 1% a
    # step is heading for an inexact stationary point, and 30 steps are plenty either way
    trial_options = {**polish_options, "ftol": max(polish_options["ftol"], 1e-2), "max_steps": 30}
    if fit.relative_error <= exact_tol and fit.model.rank > floor + 1 > 2:
        # straight to the floor, closest pairs merged one after another, then one polish: when
        # it is exact, the r̂ - floor - 1 trials on the way are saved (4 of 4 descents that
        # stopped 5-7 components above r = 10 in benchmarks/bench_peers.py)
        candidate = fit.model
        while candidate.rank > floor:
            candidate = fewer_components(candidate)[0]
        trial = polish(candidate, target, **trial_options)
        runs.append(trial)
        if trial.relative_error <= exact_tol:
            return trial, runs
    while fit.relative_error <= exact_tol and fit.model.rank > floor:
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


def _fill(fit: DecompositionResult, target: Tensor, exact_tol: float, floor: int, limit: int,
          polish_options: dict[str, Any]) -> tuple[DecompositionResult, list[DecompositionResult]]:
    """Step 4a of the module docstring: below the rank floor, add every missing component at once.

    An inexact fit of ``r̂ < floor`` components lacks at least ``floor - r̂``; the residual
    ``R = T* - T(W)`` of a dense target holds them, and the leading left singular vectors
    ``v_j`` of its unfolding span their directions when the fit has the others right. The
    terms ``R(v_j^{⊗l}) v_j^{⊗l}`` are added and polished once (a trial, 30 steps at most),
    kept if the error falls by 10% (the rule of :func:`_grow`). In benchmarks/bench_peers.py
    (gaussian spread 100, ``d = 30``) this was exact in 14 of 15 fits that stopped 1-5 short.
    At most ``limit`` components are added. Called only for a compressed target (its unfolding
    has rank ``k̂ < d``); noise makes the unfolding full rank, and the floor ``d``.
    """
    missing = min(floor - fit.model.rank, limit)
    if fit.relative_error <= exact_tol or missing < 1 or not isinstance(target, DenseSymTensor):
        return fit, []
    d, l = target.dim, target.order
    R = target.array - dense_array(fit.model)
    unfolding = R.reshape(d, -1)
    _, vectors = np.linalg.eigh(unfolding @ unfolding.T)
    V = np.ascontiguousarray(vectors[:, ::-1][:, :missing].T)  # (missing, d), largest first
    weights = DenseOp(R[None], l).evaluate(V[None])[0]  # R(v_j^{⊗l})
    trial_options = {**polish_options, "ftol": max(polish_options["ftol"], 1e-2), "max_steps": 30}
    trial = polish(fit.model + SymCP(weights, V, l), target, **trial_options)
    return (trial if trial.relative_error <= 0.9 * fit.relative_error else fit), [trial]


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
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names + ["phase"]}
    offset = 0.0
    for k, p in enumerate(phases):
        h = p.history
        for n in names:
            col = np.asarray(h[n], dtype=float) if n in h else np.full(len(h), math.nan)
            parts[n].append(col + offset if n == "step" else col)
        parts["phase"].append(np.full(len(h), float(k)))
        offset += p.steps
    return History({n: np.concatenate(cols) for n, cols in parts.items()})


def pipeline(target: TargetLike, components: int, method: str = "gd", *, seed: int = 0, compress_dense: bool = True,
             rank_tol: float = 1e-6, mass_fraction: float = 1e-2, cos: float = 0.99, exact_tol: float = 1e-10,
             max_added: int | None = None, polish_steps: int = 100, polish_tol: float = 1e-12, ftol: float = 1e-10,
             **options: Any) -> DecompositionResult:
    """Descent with ``components`` (``m``) components, ``recover``, polish: the module docstring's steps.

    Parameters
    ----------
    target : SymCP, DenseSymTensor, or anything :func:`overtensor.decompose` takes (an array,
        a TensorLy ``CPTensor``, ``(weights, vectors, order)``: :func:`overtensor.tensors.convert.as_target`)
    components : int, ``m`` of the descent
    method, seed, **options : the descent's, as for :func:`overtensor.decompose`
    compress_dense : bool, compress a dense target first (step 1)
    rank_tol : float, relative singular-value threshold of the compression
    mass_fraction, cos : passed to :func:`overtensor.recover`
    exact_tol : float, a fit at most this relative error is exact (step 5); 1e-10 is
        about 1e5 times the float64 rounding of a dense residual, ``eps · ‖T*‖``
    max_added : int, most components steps 4a and 4b may add (default ``components``; 0 turns them off)
    polish_steps, polish_tol, ftol : the polish's ``max_steps``, ``tol``, ``ftol``

    Returns
    -------
    DecompositionResult with the ``r̂`` polished components (``method = "<method>+polish"``);
    ``relative_error`` from :func:`overtensor.tensors.residual.residual_norm` on ``target``,
    ``converged`` when it is at most ``polish_tol`` (a noisy target stops by ``ftol`` instead); the
    history has the descent and every polish (column ``phase``); ``info`` has
    ``compressed_dim``, ``descent_relative_error``, ``descent_steps``,
    ``recovered_components`` (what ``recover`` kept, after its polish), ``added_components`` (steps
    4a, 4b; merges and drops after them make ``model.rank`` smaller), ``polish_stop`` and ``polish_runs``.

    Examples
    --------
    >>> import overtensor as ot
    >>> dense = ot.make_target(12, 3, 3, kind="gaussian", seed=0).to_dense()   # (12, 12, 12)
    >>> result = ot.pipeline(ot.DenseSymTensor(dense), 8, "gd", seed=0, tol=1e-3, max_steps=200)
    >>> result.method, result.model.rank, result.info["compressed_dim"]
    ('gd+polish', 3, 3)
    >>> result.relative_error < 1e-10                      # exact, where descent alone stops at 1e-3
    True
    """
    if not (np.isfinite(exact_tol) and exact_tol >= 0):
        raise OvertensorError(f"exact_tol must be a finite number >= 0, got {exact_tol!r}")
    if max_added is not None and (isinstance(max_added, bool) or not isinstance(max_added, int) or max_added < 0):
        raise OvertensorError(f"max_added must be an integer >= 0, got {max_added!r}")
    target = as_target(target)
    comp: Compression | None = None
    floor = 1
    if isinstance(target, DenseSymTensor) and compress_dense:
        comp = compress(target, rank_tol=rank_tol)
        floor = rank_floor(comp, exact_tol, target.order)
        comp = comp if comp.rank < target.dim else None  # full rank: nothing to gain
    start = time.perf_counter()
    work = comp.tensor if comp is not None else target
    descent = decompose(work, components, method, seed=seed, **options)
    opts: dict[str, Any] = {"max_steps": polish_steps, "tol": polish_tol, "ftol": ftol}
    fit = polish(recover(descent.model, mass_fraction=mass_fraction, cos=cos), work, **opts)
    recovered = fit.model.rank
    limit = components if max_added is None else max_added
    # only where the compression dropped directions: a full-rank unfolding (noise) puts the floor at d,
    # and filling up to it would fit the noise
    fit, filled = _fill(fit, work, exact_tol, floor if comp is not None else 0, limit, opts)
    fit, grown = _grow(fit, work, exact_tol, limit - (fit.model.rank - recovered), seed, opts)
    added = fit.model.rank - recovered
    fit, tries = _prune(fit, work, exact_tol, opts, floor)
    phases = [descent, fit]
    if comp is not None:
        fit = polish(comp.lift(fit.model), target, **opts)
        phases.append(fit)
    # the last fit is a polish on target itself (lifted, or work is target): its error is
    # residual_norm's already, so the dense residual is not formed a second time
    rel = fit.relative_error
    return DecompositionResult(
        model=fit.model, relative_error=rel, converged=rel <= polish_tol, steps=sum(p.steps for p in phases),
        seconds=time.perf_counter() - start, method=f"{descent.method}+polish", components=components,
        history=_join(phases), params=fit.params,
        info={"compressed_dim": comp.rank if comp is not None else target.dim,
              "descent_relative_error": descent.relative_error, "descent_steps": descent.steps,
              "descent_converged": descent.converged, "recovered_components": recovered,
              "polish_stop": fit.info["stop"], "added_components": added,
              "polish_runs": 1 + len(filled) + len(grown) + len(tries) + (comp is not None)},
    )


def polish(model: SymCP, target: TargetLike, **options: Any) -> DecompositionResult:
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
    target : SymCP, DenseSymTensor, or what :func:`pipeline` takes
    **options : ``max_steps`` (LM iterations), ``tol``, ``ftol``, ``xtol``, ``cg_tol``: the
        options of method ``polish`` but ``init`` (:class:`overtensor.solvers.options.Polish`,
        table: ``option_table("polish")``)

    Examples
    --------
    >>> import overtensor as ot
    >>> target = ot.make_target(dim=10, rank=3, order=3, seed=0)
    >>> rough = ot.decompose(target, 8, seed=0, tol=1e-2)  # descent to the basin only
    >>> start = ot.recover(rough.model)
    >>> result = ot.polish(start, target)
    >>> start.rank, result.relative_error < 1e-10, result.info["stop"]
    (3, True, 'tol')
    """
    from .solvers.options import validate  # pydantic: imported when a polish runs, not with overtensor

    if "init" in options:
        raise OvertensorError("polish takes its start from model, not init=")
    opts = validate("polish", options)
    target = as_target(target)
    if not isinstance(target, (SymCP, DenseSymTensor)):
        raise OvertensorError(f"target must be a SymCP or DenseSymTensor, got {type(target).__name__}")
    W, sigma = split_init(model, target.order, target.dim)  # of model's canonical form: zero components dropped
    if W.shape[0] == 0:
        raise OvertensorError("cannot polish a model with no components")
    # solve_batch's run without its Problem (which would stack a copy of a dense target and sum its squares)
    return polish_one(target, W, sigma, **opts.model_dump(exclude={"init"}))
