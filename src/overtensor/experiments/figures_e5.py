"""E5 figures: the amplification law from the stored runs (measurements: :mod:`.amplification`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .amplification import fit_slope, predicted_alignment, predicted_mass_phase, stall_probability, wilson
from .figures import Figure, Table, _group, _new
from .store import RunRecord

__all__ = ["figures", "FIT_MIN_DIM"]

#: Slopes are fitted over ``d >= FIT_MIN_DIM`` (and, for comparison, over every d).
FIT_MIN_DIM = 1000


def _m(r: RunRecord, name: str) -> float:
    v = r.metrics.get(name)
    return math.nan if v is None else float(v)


def _times(runs: Sequence[RunRecord]) -> np.ndarray:
    """Alignment steps, ``inf`` for runs that never aligned."""
    t = np.array([_m(r, "alignment_step") for r in runs])
    return np.where(np.isnan(t), np.inf, t)


def _predicted(r: RunRecord) -> float:
    return float(predicted_alignment(_m(r, "start_correlation"), r.config["target"]["order"],
                                     _m(r, "step_size"), _m(r, "target_weight")))


def _quartiles(x: np.ndarray) -> tuple[float, float, float]:
    q = np.quantile(x, [0.25, 0.5, 0.75]) if x.size else [math.nan] * 3
    return float(q[0]), float(q[1]), float(q[2])


def _traced(runs: Sequence[RunRecord]) -> list[RunRecord]:
    return [r for r in runs if r.status == "ok" and "alignment_step" in r.metrics]


def figures(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """E5: alignment and mass-phase steps against ``d``, per seed against ``x_0``, and the stall fraction.

    Runs are grouped by ``(label, order, m)``; a group swept over at least two ``d``
    gives a curve, every run a point of the per-seed figure, odd-order groups a stall row.
    """
    traced = _traced(runs)
    out = []
    groups = _group(traced, lambda r: (r.label, r.config["target"]["order"], r.components))
    curves = {k: g for k, g in groups.items() if len({r.config["target"]["dim"] for r in g}) >= 2}
    if curves:
        out.append(_versus_d(curves))
    if traced:
        out.append(_versus_start(groups))
    odd = {k: g for k, g in groups.items() if k[1] % 2}
    if odd:
        out.append(_stalls(odd))
    return out


def _versus_d(curves: dict[Any, list[RunRecord]]) -> Figure:
    fig, (ax, bx) = _new(2, width=5.6)
    rows = []
    fits = []
    for i, ((label, order, m), group) in enumerate(curves.items()):
        by_d = _group(group, lambda r: r.config["target"]["dim"])
        dims = list(by_d)
        times = [_times(rs) for rs in by_d.values()]
        # the leading term dominates only at large d: the O(1) steps after the blow-up flatten small d
        large = [(d, t) for d, t in zip(dims, times) if d >= FIT_MIN_DIM]
        fit = fit_slope([d for d, _ in large], [t for _, t in large])
        # the same fit of the seeds' own predictions: the scatter that the starting correlations alone cause
        predicted = [np.array([_predicted(r) for r in rs]) for d, rs in by_d.items() if d >= FIT_MIN_DIM]
        fits.append((label, order, m, fit, fit_slope(dims, times), fit_slope([d for d, _ in large], predicted)))
        med = np.array([np.median(t) for t in times])
        q1 = np.array([_quartiles(t)[0] for t in times])
        q3 = np.array([_quartiles(t)[2] for t in times])
        pred = np.array([np.median([_predicted(r) for r in rs]) for rs in by_d.values()])
        ax.errorbar(dims, med, yerr=[med - q1, q3 - med], marker="o", capsize=3, color=f"C{i}",
                    label=f"l = {order}, m = {m}: slope {fit.slope:.2f} [{fit.low:.2f}, {fit.high:.2f}]")
        ax.plot(dims, pred, ":", color=f"C{i}", label=f"l = {order}: median of 1/(l(l-2)ηc x0^(l-2))")
        if fit.dims:  # the predicted slope (l-2)/2 through the fitted points' geometric centre
            x = np.array(fit.dims, dtype=float)
            centre = np.exp(np.mean(np.log([np.median(t) for d, t in zip(dims, times) if d in fit.dims])))
            ax.plot(x, centre * (x / np.exp(np.mean(np.log(x)))) ** ((order - 2) / 2), "--", color=f"C{i}",
                    alpha=0.6, label=f"slope (l-2)/2 = {(order - 2) / 2:g}")
        mass = [np.array([_m(r, "mass_phase_steps") for r in rs]) for rs in by_d.values()]
        mass_med = [float(np.nanmedian(x)) if np.any(~np.isnan(x)) else math.nan for x in mass]
        bx.plot(dims, mass_med, marker="o", color=f"C{i}", label=f"l = {order}, m = {m}")
        r0 = group[0]
        mass_pred = predicted_mass_phase(_m(r0, "step_size"), _m(r0, "target_weight"), _m(r0, "init_mass"))
        bx.axhline(mass_pred, linestyle="--", color=f"C{i}", alpha=0.6,
                   label=f"log(c/s0)/(4ηc) = {mass_pred:.1f}" if i == 0 else None)
        for d, t, p, mm, rs in zip(dims, times, pred, mass_med, by_d.values()):
            a, b, c = _quartiles(t)
            rows.append((label, order, m, d, len(rs), int(np.sum(np.isfinite(t))), _g(b), _g(a), _g(c), _g(p),
                         _g(mm)))
    ax.set(xscale="log", yscale="log", xlabel="dimension d", ylabel="steps to best correlation >= 0.9",
           title="E5: alignment time (median, quartiles)")
    ax.legend(fontsize="x-small")
    bx.set(xscale="log", xlabel="dimension d", ylabel="steps from alignment to convergence",
           title="E5: mass phase (median)")
    bx.set_ylim(bottom=0)
    bx.legend(fontsize="x-small")
    caption = ("Alignment time against d (median and quartiles over seeds; 'aligned' counts seeds that reached 0.9 "
               f"in the budget). Slope: least squares of log median against log d over the d >= {FIT_MIN_DIM} with "
               "< 25% censored seeds, 95% bootstrap interval over seeds. "
               "Dotted: the median over seeds of each seed's predicted "
               "1/(l(l-2)ηc x0^(l-2)); dashed: slope (l-2)/2. Right: the mass phase, against log(c/s0)/(4ηc). "
               f"Slopes (fitted over d >= {FIT_MIN_DIM}; over every d in brackets after): " + "; ".join(
                   f"l = {o}, m = {m}: {f.slope:.3f} [{f.low:.3f}, {f.high:.3f}] over d = "
                   f"{', '.join(map(str, f.dims))}; every d: {a.slope:.3f} [{a.low:.3f}, {a.high:.3f}]; "
                   f"the seeds' predicted times over d >= {FIT_MIN_DIM}: {p.slope:.3f} [{p.low:.3f}, {p.high:.3f}] "
                   f"(theory {(o - 2) / 2:g})" for _, o, m, f, a, p in fits))
    return Figure("e5_alignment_vs_d", fig, caption, Table(
        ("label", "l", "m", "d", "seeds", "aligned", "median align", "q1", "q3", "median predicted",
         "median mass phase"), rows))


def _g(x: float) -> str:
    return "inf" if x == math.inf else ("-" if math.isnan(x) else f"{x:.4g}")


def _versus_start(groups: dict[Any, list[RunRecord]]) -> Figure:
    orders = sorted({k[1] for k in groups})
    fig, axes = _new(len(orders), width=5.2)
    rows = []
    for ax, order in zip(axes, orders):
        for i, ((label, o, m), group) in enumerate(groups.items()):
            if o != order:
                continue
            x0 = np.array([_m(r, "start_correlation") for r in group])
            t = _times(group)
            ok = np.isfinite(t) & (x0 > 0)
            ax.scatter(x0[ok], t[ok], s=9, alpha=0.6, color=f"C{i}", label=f"{label}, m = {m}")
            ratio = t[ok] / np.array([_predicted(r) for r, k in zip(group, ok) if k])
            a, b, c = _quartiles(ratio)
            rows.append((label, order, m, len(group), int(ok.sum()), _g(b), _g(a), _g(c)))
        r0 = next(r for k, g in groups.items() if k[1] == order for r in g)
        lo = min(_m(r, "start_correlation") for k, g in groups.items() if k[1] == order for r in g
                 if _m(r, "start_correlation") > 0)
        grid = np.geomspace(lo, 0.9, 100)
        ax.plot(grid, predicted_alignment(grid, order, _m(r0, "step_size"), _m(r0, "target_weight")), "k--",
                label="1/(l(l-2)ηc x0^(l-2))")
        ax.set(xscale="log", yscale="log", xlabel="starting correlation x0 (best over components)",
               ylabel="alignment step", title=f"E5: per seed, l = {order}")
        ax.legend(fontsize="x-small")
    return Figure("e5_alignment_vs_start", fig,
                  "Each seed's alignment time against its starting correlation, with the prediction "
                  "1/(l(l-2)ηc x0^(l-2)) (η: the step, c: the true weight). Table: measured / predicted over the "
                  "aligned seeds with x0 > 0 (median and quartiles).",
                  Table(("label", "l", "m", "seeds", "aligned with x0 > 0", "median ratio", "q1", "q3"), rows))


def _stalls(groups: dict[Any, list[RunRecord]]) -> Figure:
    fig, (ax,) = _new(width=6)
    rows = []
    for i, ((label, order, m), group) in enumerate(groups.items()):
        for d, rs in _group(group, lambda r: r.config["target"]["dim"]).items():
            n = len(rs)
            stalled = [r for r in rs if math.isnan(_m(r, "alignment_step"))]
            negative = [r for r in rs if _m(r, "start_correlation") <= 0]
            lo, hi = wilson(len(stalled), n)
            p = len(stalled) / n
            pred = stall_probability(m, order)
            both = sum(1 for r in stalled if _m(r, "start_correlation") <= 0)
            rows.append((label, order, m, d, n, len(stalled), f"{p:.3f}", f"[{lo:.3f}, {hi:.3f}]", f"{pred:.4g}",
                         len(negative), both))
            ax.errorbar([d * (1 + 0.04 * i)], [p], yerr=[[p - lo], [hi - p]], marker="o", capsize=3,
                        color=f"C{i}", label=f"{label}, m = {m}" if d == rs[0].config["target"]["dim"] and
                        rows[-1][3] == min(r.config["target"]["dim"] for r in group) else None)
            ax.plot([d * 0.85, d * 1.15], [pred, pred], "-", color=f"C{i}", linewidth=3, alpha=0.5)
    ax.set(xscale="log", xlabel="dimension d", ylabel="fraction of seeds that never align",
           title="E5: stalls at odd order (bars: prediction 2^-m)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="x-small")
    return Figure("e5_stalls", fig,
                  "Fraction of odd-order seeds that never reached correlation 0.9 in the budget, with its 95% "
                  "Wilson interval, against the prediction 2^-m (all m starting correlations <= 0). 'x0 <= 0': "
                  "seeds whose best starting correlation was <= 0; 'both': stalled seeds among them.",
                  Table(("label", "l", "m", "d", "seeds", "stalled", "fraction", "95% Wilson", "predicted 2^-m",
                         "x0 <= 0", "both"), rows))
