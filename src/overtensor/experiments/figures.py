"""One figure function per experiment tag, written against the stored runs.

Each function takes the runs of one experiment and the success threshold
``epsilon`` and returns :class:`Figure` s, each with the table it plots.
Error bars are over seeds: mean ± standard deviation for errors and steps,
the binomial standard error ``sqrt(p (1 - p) / n)`` for success rates.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

import matplotlib.ticker as ticker
import numpy as np
from matplotlib.figure import Figure as MplFigure

from .spec import lazy_threshold
from .store import RunRecord

__all__ = ["Figure", "Table", "FIGURES", "figures_for", "success_rate", "smallest_successful"]

#: A success rate at least this counts as "succeeds" for smallest-m summaries.
SUCCESS_LEVEL = 0.9
#: One line style per method where colours stand for d.
LINESTYLES = ("-", "--", ":", "-.")
#: Relative errors below this (an exact 0, when GD lands on the target) are drawn at it on log axes.
ERROR_FLOOR = 1e-16

T = TypeVar("T")


class Table(NamedTuple):
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


class Figure(NamedTuple):
    name: str  # file stem
    figure: MplFigure
    caption: str
    table: Table


def _group(runs: Iterable[T], key: Callable[[T], Hashable]) -> dict[Any, list[T]]:
    groups: dict[Any, list[T]] = defaultdict(list)
    for r in runs:
        groups[key(r)].append(r)
    return dict(sorted(groups.items(), key=lambda kv: kv[0]))


def _t(r: RunRecord, field: str) -> Any:
    return r.config["target"][field]


def _succeeded(r: RunRecord, epsilon: float) -> bool:
    return r.status == "ok" and r.relative_error is not None and r.relative_error <= epsilon


def success_rate(runs: Sequence[RunRecord], epsilon: float) -> tuple[float, float]:
    """Fraction of runs with relative error ``<= epsilon`` and its binomial standard error."""
    p = sum(_succeeded(r, epsilon) for r in runs) / len(runs)
    return p, math.sqrt(p * (1 - p) / len(runs))


def smallest_successful(runs: Sequence[RunRecord], epsilon: float) -> tuple[int | None, int | None]:
    """Smallest ``m`` whose success rate is ``>= SUCCESS_LEVEL``, and the largest smaller ``m`` tried (or None)."""
    by_m = _group(runs, lambda r: r.components)
    ok = [m for m, rs in by_m.items() if success_rate(rs, epsilon)[0] >= SUCCESS_LEVEL]
    if not ok:
        return None, None
    below = [m for m in by_m if m < ok[0]]
    return ok[0], (below[-1] if below else None)


def _mean_std(values: Sequence[float | None]) -> tuple[float, float]:
    a = np.asarray([v for v in values if v is not None], dtype=float)
    return (float(a.mean()), float(a.std())) if a.size else (math.nan, math.nan)


def _fit_exponent(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Slope of ``log y`` against ``log x`` by least squares (None with fewer than two points)."""
    if len(x) < 2:
        return None
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _new(ncols: int = 1, width: float = 6.0, *, shared: bool = False) -> tuple[MplFigure, np.ndarray]:
    # a bare Figure, not pyplot's: no global backend to choose at import, nothing to close
    fig = MplFigure(figsize=(width * ncols, 4.2), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False, sharex=shared, sharey=shared)
    return fig, axes[0]


def _ticks_at(ax: Any, xs: Iterable[float] | None = None, ys: Iterable[float] | None = None) -> None:
    """Plain tick labels at the values used, on log axes (instead of ``6 x 10^0``)."""
    for axis, values in ((ax.xaxis, xs), (ax.yaxis, ys)):
        if values is not None:
            axis.set_ticks(sorted(set(values)))
            axis.set_major_formatter(ticker.ScalarFormatter())
            axis.set_minor_formatter(ticker.NullFormatter())


def _fmt(x: Any) -> Any:
    return f"{x:.4g}" if isinstance(x, float) else x


# ----------------------------------------------------------------------------- E1


def e1(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Lazy residual against ``m / (C(d+l-1, l) / d)``, one curve per ``(d, l)``."""
    fig, (ax,) = _new()
    rows = []
    for (order, dim), group in _group(_ok(runs), lambda r: (_t(r, "order"), _t(r, "dim"))).items():
        threshold = lazy_threshold(dim, order)
        points = [(m / threshold, *_mean_std([r.relative_error for r in rs]), len(rs), m)
                  for m, rs in _group(group, lambda r: r.components).items()]
        x, y, err, _n, _ms = map(list, zip(*points))
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=f"d = {dim}, l = {order}")
        rows += [(dim, order, m, _fmt(xi), _fmt(yi), _fmt(e), k) for xi, yi, e, k, m in points]
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="m / (C(d+l-1, l) / d)", ylabel="lazy (NTK) relative residual", title="E1: lazy threshold")
    ax.legend(fontsize="small")
    measured = _measured_thresholds(runs, epsilon)
    return [Figure("e1_lazy_threshold", fig,
                   "Relative residual of the best lazy (tangent-space) fit against m over the lazy threshold "
                   "C(d+l-1, l)/d; mean ± std over seeds.",
                   Table(("d", "l", "m", "m / threshold", "residual mean", "residual std", "seeds"), rows)),
            Figure("e1_measured_threshold", _measured_plot(measured, epsilon),
                   f"Measured threshold: the smallest m tried whose residual is <= {epsilon:g} in at least "
                   f"{SUCCESS_LEVEL:.0%} of the seeds, over C(d+l-1, l)/d (1 = the predicted threshold); the "
                   "error bar reaches down to the largest smaller m tried.",
                   Table(("d", "l", "C(d+l-1,l)/d", "measured m", "largest failing m tried",
                          "measured / predicted"), measured))]


def _measured_thresholds(runs: Sequence[RunRecord], epsilon: float) -> list[tuple]:
    """Per ``(d, l)``: the predicted threshold, the smallest ``m`` that succeeds, the largest that fails below it."""
    rows = []
    for (dim, order), group in _group(runs, lambda r: (_t(r, "dim"), _t(r, "order"))).items():
        threshold = lazy_threshold(dim, order)
        m, below = smallest_successful(group, epsilon)
        rows.append((dim, order, _fmt(threshold), m or "none", below or "-",
                     _fmt(m / threshold) if m is not None else "-"))
    return rows


def _measured_plot(measured: list[tuple], epsilon: float) -> MplFigure:
    fig, (ax,) = _new(width=5)
    for order, group in _group(measured, lambda row: row[1]).items():
        pts = [(d, m / float(thr), (m - (below if below != "-" else m)) / float(thr))
               for d, _, thr, m, below, _ in group if m != "none"]
        if pts:
            d_, ratio, lo = zip(*pts)
            ax.errorbar(d_, ratio, yerr=[lo, [0] * len(lo)], marker="o", capsize=3, label=f"l = {order}")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="predicted")
    ax.set(xscale="log", xlabel="dimension d", ylabel="measured m / (C(d+l-1, l) / d)",
           title=f"E1: measured threshold (residual <= {epsilon:g})")
    _ticks_at(ax, [row[0] for row in measured])
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- E2


def e2(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Success rate against ``m``, one curve per ``(method, d)``; the smallest ``m`` that succeeds."""
    fig, (ax,) = _new()
    rows, summary = [], []
    # colour: d; line style: method
    dims = sorted({_t(r, "dim") for r in runs})
    labels = sorted({r.label for r in runs})
    for (label, dim), group in _group(runs, lambda r: (r.label, _t(r, "dim"))).items():
        by_m = _group(group, lambda r: r.components)
        rates = [success_rate(rs, epsilon) for rs in by_m.values()]
        ax.errorbar(list(by_m), [p for p, _ in rates], yerr=[e for _, e in rates], marker="o", capsize=3,
                    color=f"C{dims.index(dim) % 10}", linestyle=LINESTYLES[labels.index(label) % len(LINESTYLES)],
                    label=f"{label}, d = {dim}")
        rows += [(label, dim, m, _fmt(p), len(rs)) for (m, rs), (p, _) in zip(by_m.items(), rates)]
        summary.append((label, dim, smallest_successful(group, epsilon)[0] or "none"))
    ax.set(xlabel="components m", ylabel=f"success rate (relative error <= {epsilon:g})",
           title="E2: beyond lazy", ylim=(-0.05, 1.05))
    ax.legend(fontsize="small", ncol=2)
    fig2, (ax2,) = _new()
    for label, needed in _group(summary, lambda s: s[0]).items():
        pts = [(d, m) for _, d, m in needed if m != "none"]
        if pts:
            ax2.plot(*zip(*pts), marker="o", label=label)
    ax2.set(xscale="log", xlabel="dimension d", ylabel=f"smallest m with success >= {SUCCESS_LEVEL:.0%}",
            title="E2: components needed vs dimension")
    ax2.legend(fontsize="small")
    return [
        Figure("e2_success", fig, "Success rate against m; error bars: binomial standard error over seeds.",
               Table(("method", "d", "m", "success rate", "seeds"), rows)),
        Figure("e2_needed_m", fig2, f"Smallest m with success rate >= {SUCCESS_LEVEL:.0%}, per d and method.",
               Table(("method", "d", "smallest m"), summary)),
    ]


# ----------------------------------------------------------------------------- E3


def e3(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Phase diagram over ``(d, m)`` per method: success rate as colour."""
    by_label = _group(runs, lambda r: r.label)
    # shared axes: a panel with few cells (gd at m = r) sits on the same (m, d) grid as the others
    fig, axes = _new(len(by_label), width=4.5, shared=True)
    rows = []
    for ax, (label, group) in zip(axes, by_label.items()):
        cells = _group(group, lambda r: (_t(r, "dim"), r.components))
        rates = {key: success_rate(rs, epsilon)[0] for key, rs in cells.items()}
        d, m = zip(*rates)
        sc = ax.scatter(m, d, c=list(rates.values()), cmap="viridis", vmin=0, vmax=1, marker="s", s=120)
        for order in sorted({_t(r, "order") for r in group}):  # the lazy threshold m = C(d+l-1, l)/d
            dims = sorted(set(d))
            ax.plot([lazy_threshold(dk, order) for dk in dims], dims, color="grey", linestyle="--", linewidth=1,
                    label=f"C(d+{order - 1},{order})/d")
        ax.set(xscale="log", yscale="log", xlabel="components m", ylabel="dimension d", title=label)
        rows += [(label, dk, mk, _fmt(p), len(cells[(dk, mk)])) for (dk, mk), p in rates.items()]
    _ticks_at(axes[0], [r.components for r in runs], [_t(r, "dim") for r in runs])
    axes[0].legend(fontsize="small", loc="lower right")
    fig.colorbar(sc, ax=list(axes), label=f"success rate (relative error <= {epsilon:g})")
    fig.suptitle("E3: phase diagram")
    return [Figure("e3_phase", fig, "Success rate over (d, m) for each method; dashed: the lazy threshold "
                   "m = C(d+l-1, l)/d.",
                   Table(("method", "d", "m", "success rate", "seeds"), rows))]


# ----------------------------------------------------------------------------- E4


def e4(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Smallest successful ``m`` against ``r`` (log-log) with a fitted exponent per order."""
    fig, (ax,) = _new()
    rows, fits = [], []
    all_r: tuple = ()
    all_m: tuple = ()
    for (label, order), group in _group(runs, lambda r: (r.label, _t(r, "order"))).items():
        points = []
        for rank, rs in _group(group, lambda r: _t(r, "rank")).items():
            m, below = smallest_successful(rs, epsilon)
            rows.append((label, order, rank, m or "none", below or "-"))
            if m is not None:
                points.append((rank, m, m - (below if below is not None else m)))
        if not points:
            continue
        r_, m_, lo = zip(*points)
        line = ax.errorbar(r_, m_, yerr=[lo, [0] * len(lo)], marker="o", capsize=3, linestyle="none")
        all_r += r_
        all_m += m_
        slope = _fit_exponent(r_, m_)
        name = f"{label}, l = {order}"
        if slope is not None:
            c = math.exp(np.mean(np.log(m_)) - slope * np.mean(np.log(r_)))
            grid = np.geomspace(min(r_), max(r_), 20)
            ax.plot(grid, c * grid**slope, color=line[0].get_color(), label=f"{name}: m ~ r^{slope:.2f}")
        else:
            line.set_label(name)
        fits.append((label, order, _fmt(slope) if slope is not None else "-", 2.5 * order))
    ax.set(xscale="log", yscale="log", xlabel="rank r", ylabel=f"smallest m with success >= {SUCCESS_LEVEL:.0%}",
           title="E4: scaling in r")
    _ticks_at(ax, all_r, all_m)
    ax.legend(fontsize="small")
    return [
        Figure("e4_scaling", fig, "Smallest successful m against r; the error bar reaches down to the largest "
               "smaller m tried (the threshold lies in between); lines: least-squares fits in log-log.",
               Table(("method", "l", "r", "smallest m", "largest failing m tried"), rows)),
        Figure("e4_exponents", _exponent_plot(fits), "Fitted exponents against the bound's 2.5 l.",
               Table(("method", "l", "fitted exponent", "bound 2.5 l"), fits)),
    ]


def _exponent_plot(fits: list[tuple]) -> MplFigure:
    fig, (ax,) = _new(width=6)
    # horizontal bars: method names of any length stay readable
    names = [f"{label}, l = {order}" for label, order, *_ in fits][::-1]
    values = [float(e) if e != "-" else math.nan for _, _, e, _ in fits][::-1]
    ax.barh(names, values, label="fitted")
    ax.scatter([b for *_, b in fits][::-1], names, color="black", marker="|", s=400, label="bound 2.5 l", zorder=3)
    ax.set(xlabel="exponent of r", title="E4: fitted exponents")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)  # below: clear of the bars
    return fig


# ----------------------------------------------------------------------------- E5


def e5(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Trajectories of one run (every stored history column) and steps-to-success against ``d``."""
    out = []
    traced = [r for r in _ok(runs) if r.history]
    if traced:
        out.append(_trajectory(max(traced, key=_trace_order)))
    fig, (ax,) = _new()
    rows = []
    for (label, order), group in _group(_ok(runs), lambda r: (r.label, _t(r, "order"))).items():
        conv = [r for r in group if r.converged]
        by_d = _group(conv, lambda r: _t(r, "dim"))
        if len({_t(r, "dim") for r in group}) < 2:  # e.g. the traced run: one d, no curve
            continue
        stats = [(d, *_mean_std([r.steps for r in rs]), len(rs)) for d, rs in by_d.items()]
        if not stats:
            continue
        d_, mean, std, _n = zip(*stats)
        slope = _fit_exponent(d_, mean)
        fit = f", slope {slope:.2f} (theory {(order - 2) / 2:g})" if slope is not None else ""
        ax.errorbar(d_, mean, yerr=std, marker="o", capsize=3, label=f"{label}, l = {order}{fit}")
        rows += [(label, order, d, _fmt(mu), _fmt(s), k, sum(1 for r in group if _t(r, "dim") == d))
                 for d, mu, s, k in stats]
    if rows:
        ax.set(xscale="log", yscale="log", xlabel="dimension d", ylabel="steps to converge",
               title="E5: steps to success vs d")
        _ticks_at(ax, [row[2] for row in rows])
        ax.legend(fontsize="small")
        out.append(Figure("e5_steps_vs_d", fig, "Steps of the converged runs against d (mean ± std over seeds); "
                          "slope: least-squares fit in log-log; theory d^((l-2)/2).",
                          Table(("method", "l", "d", "steps mean", "steps std", "converged", "runs"), rows)))
    return out


def _trace_order(r: RunRecord) -> tuple[bool, int, int, int]:
    """Key of the traced run: a converged run with the most columns, the longest history, the smallest seed."""
    history = r.history or {}
    return bool(r.converged), len(history), len(history.get("step", [])), -r.seed


def _trajectory(run: RunRecord) -> Figure:
    history = run.history or {}
    step = np.asarray(history["step"], dtype=float)
    columns = [c for c in history if c not in ("step", "seconds")]
    # one panel per family: corr_0, corr_1, ... share a panel (at most 6 panels, the rest dropped)
    families: dict[str, list[str]] = defaultdict(list)
    for c in columns:
        families[re.sub(r"_\d+$", "", c)].append(c)
    panels = list(families.items())[:6]
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig = MplFigure(figsize=(4.3 * ncols, 3.6 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (family, names) in zip(axes.flat, panels):
        for name in names:
            y = np.asarray([np.nan if v is None else v for v in history[name]], dtype=float)
            ax.plot(step, y, label=name)
            if family in ("relative_error", "loss") and np.nanmin(y) > 0 and np.nanmax(y) > 10 * np.nanmin(y):
                ax.set_yscale("log")
        ax.set(xlabel="step", ylabel=family)
        if len(names) > 1:
            ax.legend(fontsize="x-small", ncol=2)
    t = run.config["target"]
    fig.suptitle(f"E5: one run ({run.label}, d = {t['dim']}, r = {t['rank']}, l = {t['order']}, "
                 f"m = {run.components}, seed {run.seed})")
    last = len(step) - 1
    table = Table(("column", "first", "last"),
                  [(c, _fmt(history[c][0]), _fmt(history[c][last])) for c in columns])
    return Figure("e5_trajectory", fig, "Every column of the stored history of one run against the step "
                  "(correlations with each true direction, masses, ... when the method records them).", table)


# ----------------------------------------------------------------------------- E6


def e6(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Relative error against the step for each ``(method, m)``, one line per seed."""
    fig, (ax,) = _new(width=7)
    rows = []
    series = _group([r for r in _ok(runs) if r.history], lambda r: (r.label, r.components))
    for i, ((label, m), group) in enumerate(series.items()):
        for k, r in enumerate(group):
            history = r.history or {}  # every run in the series has one
            err = np.maximum([ERROR_FLOOR if v is None else v for v in history["relative_error"]], ERROR_FLOOR)
            ax.plot(history["step"], err, color=f"C{i}", alpha=0.7, linewidth=1.2,
                    label=f"{label}, m = {m}" if k == 0 else None)
        steps = [r.steps + r.metrics.get("polished_steps", 0) for r in group if r.converged]
        rows.append((label, m, len(group), f"{len(steps)}/{len(group)}",
                     _fmt(float(np.median(steps))) if steps else "-",
                     _fmt(float(np.median([r.metrics.get("polished_relative_error", r.relative_error)
                                           for r in group])))))
    # the fits take tens of steps and the budget thousands: linear up to 10, logarithmic beyond
    ax.set_xscale("symlog", linthresh=10)
    ax.set(yscale="log", xlabel="step (linear up to 10, logarithmic beyond)", ylabel="relative error",
           title="E6: final convergence")
    ax.legend(fontsize="small")
    return [Figure("e6_error_vs_step", fig, "Relative error against the step (symmetric log axis), one line "
                   f"per seed (an exact 0 is drawn at {ERROR_FLOOR:g}); with recover + polish, the polish phase "
                   "follows the method's.",
                   Table(("method", "m", "seeds", "converged", "median steps", "median final error"), rows))]


# ----------------------------------------------------------------------------- fallback


def generic(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Relative error against ``m``, one curve per method (mean ± std over seeds and targets)."""
    fig, (ax,) = _new()
    rows = []
    for label, group in _group(_ok(runs), lambda r: r.label).items():
        stats = [(m, *_mean_std([r.relative_error for r in rs]), len(rs))
                 for m, rs in _group(group, lambda r: r.components).items()]
        m_, mean, std, _n = zip(*stats)
        ax.errorbar(m_, mean, yerr=std, marker="o", capsize=3, label=label)
        rows += [(label, m, _fmt(mu), _fmt(s), k) for m, mu, s, k in stats]
    ax.set(yscale="log", xlabel="components m", ylabel="relative error", title="relative error vs components")
    ax.legend(fontsize="small")
    return [Figure("error_vs_components", fig, "Final relative error against m; mean ± std over runs.",
                   Table(("method", "m", "error mean", "error std", "runs"), rows))]


def _ok(runs: Iterable[RunRecord]) -> list[RunRecord]:
    return [r for r in runs if r.status == "ok" and r.relative_error is not None]


def _e5_amplification(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    from .figures_e5 import figures  # it imports this module

    return figures(runs, epsilon)


def _extra(name: str) -> Callable[[Sequence[RunRecord], float], list[Figure]]:
    """E6 (faceted by order, polish phase marked), E7, E8 from :mod:`.figures_extra` (it imports this module)."""
    def draw(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
        from . import figures_extra

        return getattr(figures_extra, name)(runs, epsilon)

    return draw


FIGURES: dict[str, Callable[[Sequence[RunRecord], float], list[Figure]]] = {
    "e1": lambda runs, epsilon: e1(runs, epsilon) + _extra("e1_exact")(runs, epsilon),
    "e2": e2, "e3": e3, "e4": e4, "e5": _e5_amplification, "e6": _extra("e6"),
    "e7": _extra("e7"), "e8": _extra("e8"),
}


def figures_for(experiment: str, runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """The figures of one experiment tag (the generic one for tags without their own)."""
    return FIGURES.get(experiment.lower(), generic)(runs, epsilon)
