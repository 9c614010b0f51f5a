r"""The paper's variant of gradient descent: epochs with re-initialization.

Start from ``W_0 = δ_0 · g_i / ‖g_i‖``. Epoch ``k = 0, 1, ...``:

1. *(our extension, ``recycle``)* merge components whose directions agree,
   ``<w̄_i, w̄_j> >= τ`` (``|·|`` and sign flips for even order), into one
   carrying their total mass ``Σ s_i`` along the mass-weighted mean direction;
   the freed components are set to 0;
2. every component with ``‖w_i‖ < δ_1`` is re-drawn: ``w_i ← δ_0 · g / ‖g‖``;
3. ``H_k = ⌈H_0 γ^k⌉`` gradient steps on
   ``L(W) = ½‖T(W) - T*‖² + (λ_k/2)‖W‖²``, ``W ← W - η ∇L(W)``.

A run stops once ``‖T(W) - T*‖/‖T*‖ <= tol`` or after ``max_epochs``. The
regularizer makes components that align with no residual direction decay
below ``δ_1`` to be re-drawn; it biases each fitted mass by ``λ/2``, so the
*final phase* sets ``λ_k = 0`` once the error at the start of an epoch is
below ``final_below`` (by default just above the bias ``λ`` leaves).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..analysis.diagnostics import observer, truth_list
from ..errors import OvertensorError
from ..tensors.parameterization import check_signs, model_parts
from ..tensors.clustering import cluster_directions, merge_clusters
from ..result import DecompositionResult
from ..tensors.symcp import SymCP
from .base import build_results, default_init_scale, finish, step_sizes
from .descent import ACTIVE_THRESHOLD, DescentConfig, EpochEnd, Hooks, Recorder, descend
from .problem import Problem, random_directions, run_rng

__all__ = ["solve_batch", "merge_duplicates", "reinitialize", "refresh", "Epochs", "Refresh"]

# The target-dependent defaults' rules (:func:`_scales`), chosen by benchmarks/choose_defaults.py
# (docs/defaults.md); the plain defaults are declared in :class:`overtensor.solvers.options.BeyondLazy`.
DEFAULT_REINIT = 0.5  # δ_1 = DEFAULT_REINIT · δ_0
DEFAULT_REG = 3e-4  # λ = DEFAULT_REG · ‖T*‖
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


@dataclass
class Epochs:
    """The schedule and refresh that make :func:`~overtensor.solvers.descent.descend` beyond-lazy.

    ``λ_k = λ`` while the error at the start of epoch ``k`` is above ``final_below``, else 0
    (the first starts at error 1); between epochs each moving run goes through :func:`refresh`
    from its own generator; each epoch's end is logged per run (``log[b]``, one dict per epoch).
    ``delta0, delta1, lam, switch : (B,)``, per run, as :func:`_scales` gives them.
    """

    problem: Problem
    delta0: np.ndarray
    delta1: np.ndarray
    lam: np.ndarray
    switch: np.ndarray
    merge_cos: float | None
    signs: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.rngs = [run_rng(seed) for seed in self.problem.seeds]
        self.counts = np.zeros((self.problem.size, 2), dtype=np.int64)  # (merged, reinitialized) this epoch
        self.log: list[list[dict[str, Any]]] = [[] for _ in range(self.problem.size)]

    def start(self) -> np.ndarray:
        """``(B, m, d)`` initial parameters ``δ_0 · g_i / ‖g_i‖``, drawn from each run's generator."""
        m, d = self.problem.components, self.problem.dim
        return np.stack([self.delta0[b] * random_directions(rng, m, d) for b, rng in enumerate(self.rngs)])

    def reg(self, k: int, rel: np.ndarray) -> np.ndarray:
        """``λ_k`` per run, from the errors ``rel (B,)`` at the epoch's start (1 at the first: ``W_0 ≈ 0``)."""
        return np.where((np.ones_like(rel) if k == 0 else rel) > self.switch, self.lam, 0.0)

    def refresh(self, k: int, runs: np.ndarray, W: np.ndarray) -> np.ndarray:
        """The between-epoch update of the moving ``runs``, ``W (b, m, d)``; counts what it did."""
        W = W.copy()
        for j, b in enumerate(runs):
            new = refresh(W[j], self.rngs[b], init_scale=self.delta0[b], threshold=self.delta1[b],
                          merge_cos=self.merge_cos, order=self.problem.order, signs=self.signs)
            W[j], self.counts[b] = new.W, (new.merged, new.reinitialized)
        return W

    def on_epoch(self, end: EpochEnd) -> None:
        """Log the epoch for each run that moved in it."""
        masses = model_parts(end.W, self.problem.order)[0]
        threshold = ACTIVE_THRESHOLD * self.problem.target_norm
        for j, b in enumerate(end.runs):
            self.log[b].append({"epoch": end.epoch, "step": int(end.steps[b]),
                                "relative_error": float(end.relative_error[b]), "reg": float(end.reg[b]),
                                "merged": int(self.counts[b, 0]), "reinitialized": int(self.counts[b, 1]),
                                "active": int(np.sum(masses[j] >= threshold[b]))})
        self.counts[:] = 0

    def hooks(self, lengths: Sequence[int]) -> Hooks:
        """This plan as :func:`descend`'s hooks, with epochs of ``lengths`` steps."""
        return Hooks(epochs=lengths, reg=self.reg, refresh=self.refresh, on_epoch=self.on_epoch)


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
    step_size: float | None,
    init_scale: float | None,
    reinit_scale: float | None,
    reg: float | None,
    epoch_steps: int,
    epoch_growth: float,
    max_epochs: int,
    final_below: float | None,
    recycle: bool,
    merge_cos: float,
    signs: str | Sequence[float] | None,
    tol: float,
    record_every: int,
    truth: SymCP | Sequence[SymCP] | None,
    progress: Callable[[int], None] | None = None,
) -> list[DecompositionResult]:
    """Beyond-lazy gradient descent (balanced model) for each run of the batch.

    The options, validated and with every default filled in, are those of
    :class:`overtensor.solvers.options.BeyondLazy` (call through :func:`overtensor.decompose`);
    the ``None`` ("auto") ones are resolved by :func:`_scales` and :func:`~.gd.step_sizes`.
    The epochs' descent runs on the problem's arrays (:attr:`Problem.arrays`); re-drawing
    and merging between epochs are NumPy whatever the backend (a re-drawn
    component keeps its slot's sign; merges stay within one sign).

    Returns
    -------
    One result per run; ``info["epochs"]`` lists one dict per epoch: ``epoch``,
    ``step`` and ``relative_error`` at its end, ``reg``, and the ``merged``,
    ``reinitialized`` (at its start) and ``active`` (at its end) component counts.
    The history has two rows at an epoch boundary that falls on the record
    interval: before and after the between-epoch update.
    """
    sigma = check_signs(signs, problem.components)
    eta = step_sizes(problem, step_size)
    delta0, delta1, lam, switch = _scales(problem, init_scale=init_scale, reinit_scale=reinit_scale, reg=reg,
                                          final_below=final_below)
    plan = Epochs(problem, delta0, delta1, lam, switch, merge_cos if recycle else None, sigma)
    W = plan.start()
    observe = None if truth is None else observer(truth_list(truth, problem.size, problem.dim, problem.order), W)
    on = problem.arrays
    op, target_sq = problem.on(on)
    start = time.perf_counter()
    recorder = Recorder(problem.size, start, observe)
    lengths = [math.ceil(epoch_steps * epoch_growth**k) for k in range(max_epochs)]
    out = descend(on.asarray(W), op, target_sq, DescentConfig(eta, 0.0, tol, 0, record_every, signs=sigma), recorder,
                  progress=progress, hooks=plan.hooks(lengths))
    done = finish(problem, out, recorder.rows, start, method="beyond_lazy", tol=tol, signs=sigma)
    return build_results(problem, done, [
        {"step_size": float(eta[b]), "init_scale": float(delta0[b]), "reinit_scale": float(delta1[b]),
         "reg": float(lam[b]), "epoch_steps": epoch_steps, "epoch_growth": epoch_growth,
         "final_below": float(switch[b]), "recycle": recycle, "merge_cos": merge_cos, "epochs": plan.log[b],
         "interrupted": out.interrupted, "backend": problem.backend, "dtype": problem.dtype}
        for b in range(problem.size)])
