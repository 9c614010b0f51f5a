r"""E5, the amplification law: how long a fresh component takes to align, against ``d``.

In polar coordinates the direction of a component follows a norm-free tensor-power
flow (``docs/design.md`` §3). Against a residual ``c a^{⊗l}`` the correlation
``x = <w̄, a>`` obeys ``dx/dt = l c x^{l-1} (1 - x²)``; from a small ``x_0`` it
blows up after

    t_align ≈ 1 / (l (l-2) η c x_0^{l-2})      steps of size η,

and ``x_0 ~ d^{-1/2}`` makes the alignment time grow like ``d^{(l-2)/2}``. A mass
phase of ``≈ log(c / s_0) / (4 η c)`` steps follows, independent of ``d``. At odd
order a component with ``x_0 <= 0`` climbs towards ``x = 0`` (a saddle) and never
aligns: with ``m`` independent random directions that happens with probability
``2^{-m}``.

:func:`trace_metrics` reads these times off a run's full history (the runner
stores them as metrics before it subsamples the history);
:mod:`overtensor.experiments.figures_e5` draws the experiment (tag ``e5``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..result import DecompositionResult, History
from ..tensors.symcp import SymCP

__all__ = ["ALIGNED", "best_correlation", "alignment_step", "trace_metrics", "predicted_alignment",
           "predicted_mass_phase", "stall_probability", "SlopeFit", "fit_slope", "wilson"]

#: A component counts as aligned once its correlation with a true direction reaches this.
ALIGNED = 0.9
#: A d enters the slope fit only if fewer than this fraction of its seeds failed to align.
MAX_CENSORED = 0.25


def best_correlation(history: History) -> np.ndarray:
    """``max_j corr_j`` per history row: the best correlation of any component with any true direction.

    Returns
    -------
    (rows,) array (empty if the history has no ``corr_j`` columns)
    """
    names = [n for n in history.names if n.startswith("corr_")]
    if not names:
        return np.zeros(0)
    return np.max(np.stack([np.asarray(history[n], dtype=float) for n in names]), axis=0)


def alignment_step(history: History, level: float = ALIGNED) -> float:
    """The first recorded step whose best correlation is ``>= level``; NaN if none is.

    With ``record_every = k`` the true first step lies within ``k`` steps before it.
    """
    best = best_correlation(history)
    hit = np.flatnonzero(best >= level)
    return float(np.asarray(history["step"])[hit[0]]) if hit.size else math.nan


def trace_metrics(result: DecompositionResult, target: SymCP) -> dict[str, float]:
    """The amplification-law numbers of one run whose history has ``corr_j`` columns.

    Returns
    -------
    dict with ``start_correlation`` (best correlation at step 0), ``alignment_step``
    (NaN if never aligned), ``mass_phase_steps`` (steps from alignment to convergence;
    NaN unless both happened), ``target_weight`` (the largest true weight ``c``) and
    ``init_mass`` (``s_0``, the largest starting mass, from ``info["init_scale"]``)
    """
    history = result.history
    best = best_correlation(history)
    start = float(best[0]) if best.size and float(history["step"][0]) == 0 else math.nan
    align = alignment_step(history)
    mass = float(result.steps) - align if result.converged and not math.isnan(align) else math.nan
    scale = result.info.get("init_scale")
    return {"start_correlation": start, "alignment_step": align, "mass_phase_steps": mass,
            "target_weight": float(np.max(np.abs(target.weights))),
            "init_mass": float(scale) ** 2 if scale is not None else math.nan}


def predicted_alignment(x0: np.ndarray | float, order: int, step_size: float, weight: float) -> np.ndarray:
    """``1 / (l (l-2) η c x_0^{l-2})`` steps (``inf`` where ``x_0 <= 0``: a stall at odd order)."""
    x = np.asarray(x0, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = 1.0 / (order * (order - 2) * step_size * weight * x ** (order - 2))
    return np.where(x > 0, t, np.inf)


def predicted_mass_phase(step_size: float, weight: float, init_mass: float) -> float:
    """``log(c / s_0) / (4 η c)`` steps: the logistic growth ``ds/dt = 4 s (c - s)`` from ``s_0``."""
    return math.log(weight / init_mass) / (4.0 * step_size * weight)


def stall_probability(components: int, order: int) -> float:
    """``P(every starting correlation <= 0)`` for ``m`` independent random directions: ``2^{-m}`` at odd
    order, 0 at even order (there ``-a`` is the same component, so every start can align)."""
    return 0.5 ** components if order % 2 else 0.0


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (width > 0 at 0 and at n)."""
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


class SlopeFit(NamedTuple):
    slope: float
    low: float
    high: float
    dims: tuple[int, ...]  # the d's in the fit


def _slope_of_medians(log_d: np.ndarray, *samples: np.ndarray, axis: int = -1) -> np.ndarray:
    medians = np.stack([np.median(s, axis=axis) for s in samples], axis=-1)  # (..., k)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(medians)
    x = log_d - log_d.mean()
    return np.sum((y - y.mean(axis=-1, keepdims=True)) * x, axis=-1) / np.sum(x * x)


def fit_slope(dims: Sequence[int], samples: Sequence[Sequence[float] | np.ndarray], *, confidence: float = 0.95,
              n_resamples: int = 2000, seed: int = 0) -> SlopeFit:
    """Least-squares slope of ``log median(t)`` against ``log d`` and its bootstrap interval.

    Parameters
    ----------
    dims : (k,) dimensions; samples : k arrays of per-seed times (``inf``: never aligned)

    The interval resamples the seeds of each ``d`` independently
    (:func:`scipy.stats.bootstrap`, percentile method). Only ``d`` with fewer than
    :data:`MAX_CENSORED` of their seeds censored enter, so each median is a time.
    """
    from scipy.stats import bootstrap

    keep = [i for i, s in enumerate(samples)
            if len(s) >= 2 and np.mean(~np.isfinite(np.asarray(s, dtype=float))) < MAX_CENSORED]
    if len(keep) < 2:
        return SlopeFit(math.nan, math.nan, math.nan, tuple(int(dims[i]) for i in keep))
    log_d = np.log(np.asarray([dims[i] for i in keep], dtype=float))
    data = tuple(np.asarray(samples[i], dtype=float) for i in keep)
    slope = float(_slope_of_medians(log_d, *data))
    res = bootstrap(data, lambda *s, axis=-1: _slope_of_medians(log_d, *s, axis=axis), n_resamples=n_resamples,
                    confidence_level=confidence, method="percentile", vectorized=True, paired=False,
                    random_state=np.random.default_rng(seed))
    ci = res.confidence_interval
    return SlopeFit(slope, float(ci.low), float(ci.high), tuple(int(dims[i]) for i in keep))
