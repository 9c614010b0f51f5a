r"""The paper's variant of gradient descent: epochs with re-initialization.

Start from ``W_0 = δ_0 · g_i / ‖g_i‖``. Epoch ``k = 0, 1, ...``:

1. *(our extension, ``recycle``)* merge components whose directions agree,
   ``<w̄_i, w̄_j> >= τ`` (``|·|`` and sign flips for even order), into one
   carrying their total mass ``Σ s_i`` along the mass-weighted mean direction;
   the freed components are set to 0;
2. every component with ``‖w_i‖ < δ_1`` is re-drawn: ``w_i ← δ_0 · g / ‖g‖``;
3. ``H_k = ⌈H_0 γ^k⌉`` gradient steps on
   ``L(W) = ½‖T(W) - T*‖² + (λ_k/2)‖W‖²``, ``W ← W - η ∇L(W)``.

A run stops once ``‖T(W) - T*‖/‖T*‖ <= tol``, after ``max_epochs`` epochs, or
once it has taken ``max_steps`` gradient steps in all (the last epoch is cut
short), whichever comes first: ``max_steps`` is the same total budget as
``gd``'s, for comparisons at equal cost. The
regularizer makes components that align with no residual direction decay
below ``δ_1`` to be re-drawn; it biases each fitted mass by ``λ/2``, so the
*final phase* sets ``λ_k = 0`` once the error at the start of an epoch is
below ``final_below`` (by default just above the bias ``λ`` leaves).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..backend import get_backend, to_numpy
from ..analysis.diagnostics import observer, truth_list
from ..errors import OvertensorError
from ..tensors.parameterization import check_signs, model_parts
from ..tensors.clustering import cluster_directions, merge_clusters
from ..result import DecompositionResult
from ..tensors.symcp import SymCP
from .descent import ACTIVE_THRESHOLD, DescentConfig, Recorder, descend
from .gd import build_result, check_common, default_init_scale, relative_errors, step_sizes
from .problem import Problem, random_directions, run_rng

__all__ = ["solve_batch", "merge_duplicates", "reinitialize", "Refresh"]

# Defaults, chosen by benchmarks/choose_defaults.py (docs/defaults.md).
DEFAULT_REINIT = 0.5  # δ_1 = DEFAULT_REINIT · δ_0
DEFAULT_REG = 3e-4  # λ = DEFAULT_REG · ‖T*‖
DEFAULT_EPOCH_STEPS = 100  # H_0
DEFAULT_GROWTH = 1.25  # γ
DEFAULT_EPOCHS = 20
DEFAULT_MERGE_COS = 0.99  # τ
DEFAULT_FINAL_BELOW = 1e-2


class Refresh(NamedTuple):
    """Parameters after the between-epoch update, and what it did.

    W : (m, d) array; merged : components absorbed into another;
    reinitialized : components re-drawn (the merged ones included)
    """

    W: np.ndarray
    merged: int
    reinitialized: int


def merge_duplicates(W: np.ndarray, cos: float, order: int) -> tuple[np.ndarray, int]:
    """Merge components with agreeing directions into the heaviest of each group.

    ``w_k ← sqrt(Σ_{i∈k} s_i) · ū_k``, ``ū_k ∝ Σ_{i∈k} s_i σ_i w̄_i`` (balanced
    model, ``s_i = ‖w_i‖²``); the other members become 0.

    Parameters
    ----------
    W : (m, d) array; cos : float, ``τ``; order : int

    Returns
    -------
    (m, d) array and the number of components freed.
    """
    masses, directions, _ = model_parts(W, order)
    labels, signs = cluster_directions(directions, masses, cos, even=order % 2 == 0)
    k = int(labels.max()) + 1
    if k == W.shape[0]:
        return W, 0
    mean, total, _ = merge_clusters(masses, directions, labels, signs, order)
    heaviest = np.full(k, -1)
    for i in np.argsort(-masses, kind="stable"):
        if heaviest[labels[i]] < 0:
            heaviest[labels[i]] = i
    grouped = np.bincount(labels, minlength=k) > 1
    out = np.where(grouped[labels][:, None], 0.0, W)  # components alone in their group stay as they are
    out[heaviest[grouped]] = np.sqrt(total[grouped])[:, None] * mean[grouped]
    return out, W.shape[0] - k


def reinitialize(W: np.ndarray, rng: np.random.Generator, init_scale: float, threshold: float) -> tuple[np.ndarray, int]:
    """Re-draw every row with ``‖w_i‖ < threshold`` as ``init_scale · g / ‖g‖``.

    Returns the new ``(m, d)`` array and the number of rows re-drawn.
    """
    small = np.linalg.norm(W, axis=1) < threshold
    count = int(small.sum())
    if count:
        W = W.copy()
        W[small] = init_scale * random_directions(rng, count, W.shape[1])
    return W, count


def refresh(W: np.ndarray, rng: np.random.Generator, *, init_scale: float, threshold: float,
            merge_cos: float | None, order: int, signs: np.ndarray | None = None) -> Refresh:
    """The between-epoch update: merge duplicates (if ``merge_cos``), then re-draw small components.

    A signed model merges within each sign only: ``+s w̄^{⊗l}`` and ``-s w̄^{⊗l}`` cancel, not add.
    """
    merged = 0
    if merge_cos is not None:
        W = W.copy()
        for group in ([np.arange(W.shape[0])] if signs is None else [np.flatnonzero(signs > 0),
                                                                      np.flatnonzero(signs < 0)]):
            if group.size:
                W[group], count = merge_duplicates(W[group], merge_cos, order)
                merged += count
    W, count = reinitialize(W, rng, init_scale, threshold)
    return Refresh(W, merged, count)


def _check_options(*, reinit_scale: float | None, init_scale: float | None, epoch_steps: int, epoch_growth: float,
                   max_epochs: int, merge_cos: float, final_below: float | None) -> None:
    if reinit_scale is not None and not (np.isfinite(reinit_scale) and reinit_scale > 0):
        raise OvertensorError(f"reinit_scale must be a finite number > 0, got {reinit_scale!r}")
    if reinit_scale is not None and init_scale is not None and reinit_scale >= init_scale:
        raise OvertensorError(f"reinit_scale (δ1 = {reinit_scale}) must be below init_scale (δ0 = {init_scale})")
    for name, v in (("epoch_steps", epoch_steps), ("max_epochs", max_epochs)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise OvertensorError(f"{name} must be an integer >= 1, got {v!r}")
    if not (np.isfinite(epoch_growth) and epoch_growth >= 1):
        raise OvertensorError(f"epoch_growth must be a finite number >= 1, got {epoch_growth!r}")
    if not (np.isfinite(merge_cos) and 0 < merge_cos <= 1):
        raise OvertensorError(f"merge_cos must lie in (0, 1], got {merge_cos!r}")
    if final_below is not None and not (np.isfinite(final_below) and final_below >= 0):
        raise OvertensorError(f"final_below must be a finite number >= 0, got {final_below!r}")


def _scales(problem: Problem, *, init_scale: float | None, reinit_scale: float | None, reg: float | None,
            final_below: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-run ``(δ_0, δ_1, λ, final_below)``, each ``(B,)``, defaults relative to ``‖T*‖``."""
    norm = problem.target_norm
    delta0 = np.array([init_scale or default_init_scale(problem, b, "balanced") for b in range(problem.size)])
    delta1 = DEFAULT_REINIT * delta0 if reinit_scale is None else np.full(problem.size, reinit_scale)
    if np.any(delta1 >= delta0):
        raise OvertensorError(
            f"reinit_scale (δ1 = {delta1.max():.3g}) must be below init_scale (δ0 = {delta0.min():.3g})")
    lam = DEFAULT_REG * norm if reg is None else np.full(problem.size, float(reg))
    # λ leaves a relative error of about λ sqrt(r) / (2‖T*‖); switch it off just above that
    switch = (np.maximum(DEFAULT_FINAL_BELOW, lam * np.sqrt(problem.components) / norm)
              if final_below is None else np.full(problem.size, float(final_below)))
    return delta0, delta1, lam, switch


def solve_batch(
    problem: Problem,
    *,
    step_size: float | None = None,
    init_scale: float | None = None,
    reinit_scale: float | None = None,
    reg: float | None = None,
    epoch_steps: int = DEFAULT_EPOCH_STEPS,
    epoch_growth: float = DEFAULT_GROWTH,
    max_epochs: int = DEFAULT_EPOCHS,
    max_steps: int | None = None,
    final_below: float | None = None,
    recycle: bool = True,
    merge_cos: float = DEFAULT_MERGE_COS,
    signs: str | Sequence[float] | None = None,
    backend: str = "numpy",
    device: str | None = None,
    dtype: str = "float64",
    tol: float = 1e-4,
    record_every: int = 10,
    truth: SymCP | Sequence[SymCP] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[DecompositionResult]:
    """Beyond-lazy gradient descent (balanced model) for each run of the batch.

    Parameters
    ----------
    step_size : float, ``η``, default ``0.3 / σ`` as for ``gd``
    init_scale : float, ``δ_0``, default ``1e-3 · ‖T*‖^{1/2}``
    reinit_scale : float, ``δ_1 < δ_0``, default ``0.5 δ_0``
    reg : float, ``λ``, default ``3e-4 · ‖T*‖``
    epoch_steps : int, ``H_0``; epoch_growth : float, ``γ >= 1``; max_epochs : int
    max_steps : int, optional, total gradient steps over all epochs (the epoch that would pass
        it is cut short); None: only ``max_epochs`` limits the run. For a budget equal to
        ``gd``'s set ``max_epochs`` high enough not to bind first (20 epochs of the defaults
        take 34,338 steps)
    final_below : float, ``λ`` is switched off for an epoch that starts below this relative
        error; default ``max(1e-2, λ sqrt(m) / ‖T*‖)``, above the bias ``≈ λ sqrt(r) / (2‖T*‖)``
        that ``λ`` leaves once every direction is fit
    recycle : bool, merge duplicate directions between epochs and re-draw the freed components
    merge_cos : float, ``τ`` for ``recycle``
    signs : None, ``"half"`` or ``m`` values of +1/-1: a signed model, as for ``gd``
    backend, device, dtype : where the epochs' descent runs, as for ``gd`` (re-drawing and
        merging between epochs are NumPy; in float32 the final error is recomputed in float64)
        (a re-drawn component keeps its slot's sign; merges stay within one sign)
    tol : float, stop at relative error ``<= tol``
    record_every : int, history interval in steps
    truth : SymCP or one per run, optional; adds ``corr_j``, ``cone_mass_j`` and
        ``movement`` columns to the history (:mod:`overtensor.analysis.diagnostics`)

    Returns
    -------
    One result per run; ``info["epochs"]`` lists one dict per epoch: ``epoch``,
    ``step`` and ``relative_error`` at its end, ``reg``, and the ``merged``,
    ``reinitialized`` (at its start) and ``active`` (at its end) component counts.
    The history has two rows at an epoch boundary that falls on the record
    interval: before and after the between-epoch update.
    """
    check_common(step_size=step_size, reg=0.0 if reg is None else reg, tol=tol,
                 max_steps=0 if max_steps is None else max_steps,
                 record_every=record_every, init_scale=init_scale)
    _check_options(reinit_scale=reinit_scale, init_scale=init_scale, epoch_steps=epoch_steps,
                   epoch_growth=epoch_growth, max_epochs=max_epochs, merge_cos=merge_cos, final_below=final_below)
    B, order = problem.size, problem.order
    sigma = check_signs(signs, problem.components)
    eta = step_sizes(problem, step_size)
    delta0, delta1, lam, switch = _scales(problem, init_scale=init_scale, reinit_scale=reinit_scale, reg=reg,
                                          final_below=final_below)
    rngs = [run_rng(seed) for seed in problem.seeds]
    W = np.stack([delta0[b] * random_directions(rngs[b], problem.components, problem.dim) for b in range(B)])
    observe = None if truth is None else observer(truth_list(truth, B, problem.dim, order), W)
    on = get_backend(backend, device, dtype)
    op, target_sq = problem.on(on)
    start = time.perf_counter()
    recorder = Recorder(B, start, observe)
    steps = np.zeros(B, dtype=np.int64)
    rel = np.ones(B)
    converged = np.zeros(B, dtype=bool)
    epochs: list[list[dict[str, Any]]] = [[] for _ in range(B)]
    threshold = ACTIVE_THRESHOLD * problem.target_norm
    interrupted = False
    for k in range(max_epochs):
        running = ~converged
        if not running.any() or interrupted:
            break
        length = math.ceil(epoch_steps * epoch_growth**k)
        if max_steps is not None:  # the runs still going have all taken the same steps
            length = min(length, max_steps - int(steps[running].max()))
            if length <= 0:  # budget spent: stop before a refresh would re-draw components
                break
        counts = np.zeros((B, 2), dtype=np.int64)
        if k > 0:
            for b in np.flatnonzero(running):
                new = refresh(W[b], rngs[b], init_scale=delta0[b], threshold=delta1[b],
                              merge_cos=merge_cos if recycle else None, order=order, signs=sigma)
                W[b], counts[b] = new.W, (new.merged, new.reinitialized)
        lam_k = np.where(rel > switch, lam, 0.0)
        for value in np.unique(lam_k[running]):
            group = running & (lam_k == value)
            config = DescentConfig(eta, float(value), tol, length, record_every, signs=sigma)
            out = descend(on.asarray(W), op, target_sq, config, recorder, steps=steps, running=group,
                          progress=progress)
            W, steps = to_numpy(out.W).astype(np.float64), out.steps
            rel = np.where(group, out.relative_error, rel)
            converged |= out.converged
            if out.interrupted:  # Ctrl-C: this epoch's state is the result
                interrupted = True
                break
        masses = model_parts(W, order)[0]
        for b in np.flatnonzero(running):
            epochs[b].append({"epoch": k, "step": int(steps[b]), "relative_error": float(rel[b]),
                              "reg": float(lam_k[b]), "merged": int(counts[b, 0]),
                              "reinitialized": int(counts[b, 1]),
                              "active": int(np.sum(masses[b] >= threshold[b]))})
    if dtype != "float64":  # the loop's estimate has a floor near sqrt(eps); report the float64 error
        rel = relative_errors(problem, W, "balanced", sigma)
        converged = rel <= tol
    seconds = time.perf_counter() - start
    return [
        build_result(problem, b, W[b], relative_error=rel[b], converged=converged[b], steps=steps[b],
                     seconds=seconds, method="beyond_lazy", rows=recorder.rows[b], parameterization="balanced",
                     signs=sigma,
                     info={"step_size": float(eta[b]), "init_scale": float(delta0[b]), "reinit_scale": float(delta1[b]),
                           "reg": float(lam[b]), "epoch_steps": epoch_steps, "epoch_growth": epoch_growth,
                           "final_below": float(switch[b]), "recycle": recycle, "merge_cos": merge_cos,
                           "epochs": epochs[b], "interrupted": interrupted, "backend": backend, "dtype": dtype})
        for b in range(B)
    ]
