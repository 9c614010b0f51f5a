"""One figure function per experiment tag, written against the stored runs.

Each function takes the runs of one experiment and the success threshold
``epsilon`` and returns :class:`Figure` s, each with the table it plots.
Error bars are over seeds: 95% Wilson intervals for rates (never
``sqrt(p (1 - p) / n)``, of width 0 at 0 and 1); E2-E4 and the generic figure
report both criteria of docs/design.md section 6, fit (relative error
``<= epsilon``) and recovery (the ``recovered`` metric a sweep stores), and plot
recovery where it was recorded; E4's exponents carry percentile-bootstrap
intervals over seeds.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

import matplotlib.ticker as ticker
import numpy as np
from matplotlib.figure import Figure as MplFigure

from .spec import lazy_threshold
from .store import RunRecord

__all__ = ["Figure", "Table", "FIGURES", "figures_for", "success_rate", "smallest_successful", "wilson",
           "main_criterion"]

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


def _recovered(r: RunRecord) -> bool:
    return r.status == "ok" and bool(r.metrics.get("recovered"))


def _passes(r: RunRecord, epsilon: float, criterion: str) -> bool:
    """``criterion`` ``"fit"``: relative error ``<= epsilon``; ``"recovery"``: the stored match found everything."""
    return _succeeded(r, epsilon) if criterion == "fit" else _recovered(r)


def main_criterion(runs: Iterable[RunRecord]) -> str:
    """``"recovery"`` when the runs recorded it (``record.recovery``), else ``"fit"``."""
    return "recovery" if any("recovered" in r.metrics for r in runs) else "fit"


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a binomial proportion (never of width 0 at 0 or 1)."""
    from scipy.stats import binomtest  # imported here: scipy.stats is slow to load

    ci = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def success_rate(runs: Sequence[RunRecord], epsilon: float, criterion: str = "fit") -> tuple[float, float, float]:
    """Fraction of runs passing ``criterion`` and its 95% Wilson interval ``(p, low, high)``."""
    k = sum(_passes(r, epsilon, criterion) for r in runs)
    low, high = wilson(k, len(runs))
    return k / len(runs), low, high


def smallest_successful(runs: Sequence[RunRecord], epsilon: float,
                        criterion: str = "fit") -> tuple[int | None, int | None]:
    """Smallest ``m`` whose rate is ``>= SUCCESS_LEVEL``, and the largest smaller ``m`` tried (or None)."""
    by_m = _group(runs, lambda r: r.components)
    ok = [m for m, rs in by_m.items() if success_rate(rs, epsilon, criterion)[0] >= SUCCESS_LEVEL]
    if not ok:
        return None, None
    below = [m for m in by_m if m < ok[0]]
    return ok[0], (below[-1] if below else None)


def _rate_cell(runs: Sequence[RunRecord], epsilon: float, criterion: str) -> str:
    """``p [low, high]`` for a table."""
    p, low, high = success_rate(runs, epsilon, criterion)
    return f"{p:.2f} [{low:.2f}, {high:.2f}]"


def _needed(runs: Sequence[RunRecord], epsilon: float, criterion: str) -> str:
    """The smallest ``m`` for a table: ``m``, ``<= m`` at the grid's floor, ``> M`` when none passes."""
    tried = sorted({r.components for r in runs})
    m, _ = smallest_successful(runs, epsilon, criterion)
    if m is None:
        return f"> {tried[-1]}"
    return f"<= {m}" if m == tried[0] else str(m)


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


def _criteria_note(criterion: str, epsilon: float) -> str:
    if criterion == "fit":
        return f"fit (relative error <= {epsilon:g}; recovery was not recorded)"
    return ("recovery (every true component matched at |cos| >= 0.99 with its weight within 10%, nothing "
            "spurious)")


def _dodge(x: Sequence[float], i: int, n: int, step: float = 0.04) -> list[float]:
    """``x`` shifted by a factor ``(1 + step)^(i - (n-1)/2)``: the ``i``-th of ``n`` methods side by side,
    none hidden."""
    return [v * (1 + step) ** (i - (n - 1) / 2) for v in x]


def _panels(n: int, width: float = 4.3, height: float = 3.6, *, sharex: bool = False,
            sharey: bool = False) -> tuple[MplFigure, list[Any]]:
    """``n`` axes in rows of at most 3; the unused ones hidden."""
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = MplFigure(figsize=(width * ncols, height * nrows), layout="constrained")  # no pyplot: see _new
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def e2(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Recovery (and fit) rate against ``m``, one panel per ``d``; the ``m`` needed against ``d``."""
    criterion = main_criterion(runs)
    labels = sorted({r.label for r in runs})
    by_d = _group(runs, lambda r: _t(r, "dim"))
    fig, axes = _panels(len(by_d), sharey=True)
    rows = []
    for ax, (dim, group) in zip(axes, by_d.items()):
        for label, rs in _group(group, lambda r: r.label).items():
            by_m = _group(rs, lambda r: r.components)
            colour = f"C{labels.index(label) % 10}"
            main = [success_rate(c, epsilon, criterion) for c in by_m.values()]
            p = np.array([x[0] for x in main])
            x = _dodge(list(by_m), labels.index(label), len(labels))
            ax.errorbar(x, p, yerr=[p - [x[1] for x in main], [x[2] for x in main] - p], marker="o",
                        capsize=3, color=colour, label=label)
            if criterion == "recovery":  # the fit criterion beside it, dotted
                ax.plot(x, [success_rate(c, epsilon, "fit")[0] for c in by_m.values()], color=colour,
                        linestyle=":", linewidth=1)
            rows += [(label, dim, m, _rate_cell(c, epsilon, "fit"), _rate_cell(c, epsilon, "recovery")
                      if criterion == "recovery" else "-", len(c)) for m, c in by_m.items()]
        rank = sorted({_t(r, "rank") for r in group})
        for k in rank:
            ax.axvline(k, color="grey", linewidth=0.8, linestyle="--")
        ax.set(xlabel="components m (dashed: r)", title=f"d = {dim}", ylim=(-0.05, 1.05))
        _ticks_at(ax, [r.components for r in group])
    axes[0].set_ylabel(f"{criterion} rate (95% Wilson)")
    axes[0].legend(fontsize="small")
    fig.suptitle(f"E2: {criterion} rate against m" + (" (dotted: fit)" if criterion == "recovery" else ""))
    return [
        Figure("e2_success", fig, f"Rate of {_criteria_note(criterion, epsilon)} against m, one panel per d; "
               f"error bars: 95% Wilson intervals over seeds" + (f"; dotted: the fit rate (relative error <= "
                                                                  f"{epsilon:g})." if criterion == "recovery" else "."),
               Table(("method", "d", "m", f"fit rate (<= {epsilon:g}) [95% CI]", "recovery rate [95% CI]",
                      "seeds"), rows)),
        _needed_m_figure(runs, epsilon, criterion),
    ]


def _needed_m_figure(runs: Sequence[RunRecord], epsilon: float, criterion: str) -> Figure:
    """Smallest ``m`` passing ``criterion`` in >= 90% against ``d``, beside the lazy count ``C(d+l-1,l)/d``."""
    fig, (ax,) = _new(width=6.5)
    rows, dims_all = [], sorted({_t(r, "dim") for r in runs})
    by_label = _group(runs, lambda r: r.label)
    for i, (label, group) in enumerate(by_label.items()):
        pts: dict[str, list[tuple[float, int]]] = {"found": [], "floor": [], "none": []}
        for dim, rs in _group(group, lambda r: _t(r, "dim")).items():
            tried = sorted({r.components for r in rs})
            m, below = smallest_successful(rs, epsilon, criterion)
            kind = "none" if m is None else "floor" if m == tried[0] else "found"
            pts[kind].append((_dodge([dim], i, len(by_label))[0], m if m is not None else tried[-1]))
            rows.append((label, dim, _needed(rs, epsilon, criterion), _needed(rs, epsilon, "fit"),
                         f"{tried[0]}-{tried[-1]}", below if below is not None else "-"))
        colour = f"C{i % 10}"
        line = sorted(pts["found"] + pts["floor"])
        if line:
            ax.plot(*zip(*line), color=colour, linewidth=1)
        for kind, marker, note in (("found", "o", ""), ("floor", "v", " (v: at most, the grid's floor)"),
                                   ("none", "^", " (^: more than the largest m tried)")):
            if pts[kind]:
                ax.scatter(*zip(*pts[kind]), color=colour, marker=marker, s=40, zorder=3,
                           label=f"{label}{note}" if kind != "found" or not (pts["floor"] or pts["none"]) else
                           label)
    for order in sorted({_t(r, "order") for r in runs}):
        grid = np.geomspace(dims_all[0], dims_all[-1], 50)
        ax.plot(grid, [lazy_threshold(round(d), order) for d in grid], color="grey", linestyle="--",
                label=f"lazy count C(d+{order - 1},{order})/d")
    for k in sorted({_t(r, "rank") for r in runs}):
        ax.axhline(k, color="grey", linestyle=":", linewidth=1, label=f"r = {k}")
    ax.set(xscale="log", yscale="log", xlabel="dimension d", ylim=(0.8, None),
           ylabel=f"smallest m with {criterion} in >= {SUCCESS_LEVEL:.0%}", title="E2: components needed vs d")
    _ticks_at(ax, dims_all)
    ax.legend(fontsize="small", loc="upper left")
    return Figure("e2_needed_m", fig, f"Smallest m whose {criterion} rate is >= {SUCCESS_LEVEL:.0%}, per d and "
                  "method, on a log axis that also holds the lazy (NTK) count C(d+l-1, l)/d; every method is "
                  "drawn, side by side where they coincide (v: the smallest m tried already passes; ^: no m "
                  "tried passes, drawn at the largest m tried).",
                  Table(("method", "d", f"needed m ({criterion})", f"needed m (fit <= {epsilon:g})", "m tried",
                         "largest failing m"), rows))


# ----------------------------------------------------------------------------- E3


def e3(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Phase diagram over ``(d, m)`` per method: the recovery (or fit) rate as colour."""
    criterion = main_criterion(runs)
    by_label = _group(runs, lambda r: r.label)
    # shared axes: a panel with few cells sits on the same (m, d) grid as the others
    fig, axes = _panels(len(by_label), sharex=True, sharey=True)
    rows = []
    for ax, (label, group) in zip(axes, by_label.items()):
        cells = _group(group, lambda r: (_t(r, "dim"), r.components))
        rates = {key: success_rate(rs, epsilon, criterion)[0] for key, rs in cells.items()}
        d, m = zip(*rates)
        sc = ax.scatter(m, d, c=list(rates.values()), cmap="viridis", vmin=0, vmax=1, marker="s", s=120)
        for order in sorted({_t(r, "order") for r in group}):  # the lazy threshold m = C(d+l-1, l)/d
            dims = sorted(set(d))
            ax.plot([lazy_threshold(dk, order) for dk in dims], dims, color="grey", linestyle="--", linewidth=1,
                    label=f"C(d+{order - 1},{order})/d")
        for k in sorted({_t(r, "rank") for r in group}):
            ax.axvline(k, color="grey", linestyle=":", linewidth=1, label=f"m = r = {k}")
        ax.set(xscale="log", yscale="log", xlabel="components m", ylabel="dimension d", title=label)
        rows += [(label, dk, mk, _rate_cell(cells[(dk, mk)], epsilon, "fit"),
                  _rate_cell(cells[(dk, mk)], epsilon, "recovery") if criterion == "recovery" else "-",
                  len(cells[(dk, mk)])) for (dk, mk) in rates]
    _ticks_at(axes[0], [r.components for r in runs], [_t(r, "dim") for r in runs])
    axes[0].legend(fontsize="small", loc="lower right")
    fig.colorbar(sc, ax=axes, label=f"{criterion} rate")
    fig.suptitle(f"E3: phase diagram ({criterion})")
    return [Figure("e3_phase", fig, f"Rate of {_criteria_note(criterion, epsilon)} over (d, m) for each method; "
                   "dashed: the lazy threshold m = C(d+l-1, l)/d; dotted: m = r. The table gives both criteria "
                   "with 95% Wilson intervals.",
                   Table(("method", "d", "m", f"fit rate (<= {epsilon:g}) [95% CI]", "recovery rate [95% CI]",
                          "seeds"), rows))]


# ----------------------------------------------------------------------------- E4

#: Bootstrap resamples of the seeds for E4's exponent interval.
BOOTSTRAP_RESAMPLES = 999


def _needed_by_rank(group: Sequence[RunRecord], epsilon: float, criterion: str) -> dict[int, int]:
    """``{r: smallest m passing in >= 90%}`` over the ranks where some ``m`` passes."""
    out = {}
    for rank, rs in _group(group, lambda r: _t(r, "rank")).items():
        m, _ = smallest_successful(rs, epsilon, criterion)
        if m is not None:
            out[rank] = m
    return out


def _exponent_interval(group: Sequence[RunRecord], epsilon: float, criterion: str) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the fitted exponent, resampling seeds (each seed: one target per r).

    A resample that leaves fewer than two ranks with a needed ``m`` has no fit and is left out.
    """
    from scipy.stats import bootstrap  # imported here: scipy.stats is slow to load

    seeds = np.array(sorted({r.seed for r in group}))
    by_seed = _group(group, lambda r: r.seed)

    def slope(sample: np.ndarray) -> float:
        picked = [r for s in sample for r in by_seed[int(s)]]  # a seed drawn twice counts twice
        needed = _needed_by_rank(picked, epsilon, criterion)
        fit = _fit_exponent(list(needed), list(needed.values()))
        return math.nan if fit is None else fit

    with warnings.catch_warnings():  # a resample without a fit is NaN: scipy warns, the interval skips it
        warnings.simplefilter("ignore")
        result = bootstrap((seeds,), slope, n_resamples=BOOTSTRAP_RESAMPLES, vectorized=False,
                           method="percentile", random_state=0)
    dist = result.bootstrap_distribution
    if np.all(np.isnan(dist)):
        return math.nan, math.nan
    low, high = np.nanpercentile(dist, [2.5, 97.5])  # the percentile interval over resamples with a fit
    return float(low), float(high)


def e4(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Smallest ``m`` passing each criterion against ``r``, with fitted exponents and their intervals.

    Recovery (where recorded) is drawn with filled markers and solid lines, fit with open markers
    and dashed lines: the exponent of each comes from the ranks where some ``m`` passes.
    """
    criteria = ("recovery", "fit") if main_criterion(runs) == "recovery" else ("fit",)
    fig, (ax,) = _new(width=6.5)
    rows, fits = [], []
    all_r: list = []
    all_m: list = []
    groups = _group(runs, lambda r: (r.label, _t(r, "order")))
    for (label, order), group in groups.items():
        for rank, rs in _group(group, lambda r: _t(r, "rank")).items():
            _, below = smallest_successful(rs, epsilon, criteria[0])
            rows.append((label, order, rank, *[_needed(rs, epsilon, c) for c in criteria], below or "-"))
    for i, ((label, order), group) in enumerate(groups.items()):
        for criterion in criteria:
            fits.append(_exponent_row(ax, label, order, group, epsilon, criterion, f"C{i % 10}", all_r, all_m))
    ax.set(xscale="log", yscale="log", xlabel="rank r", ylabel=f"smallest m passing in >= {SUCCESS_LEVEL:.0%}",
           title="E4: scaling in r (filled: recovery, open: fit)")
    if all_r:
        _ticks_at(ax, all_r, all_m)
    else:  # nothing to draw on log axes: say so instead
        ax.set(xscale="linear", yscale="linear")
        ax.text(0.5, 0.5, f"no m tried reaches {SUCCESS_LEVEL:.0%} at any r", ha="center", transform=ax.transAxes)
    # below the axes: clear of every curve
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=1)
    names = tuple(f"needed m ({c if c == 'recovery' else f'fit <= {epsilon:g}'})" for c in criteria)
    return [
        Figure("e4_scaling", fig, f"Smallest m whose rate is >= {SUCCESS_LEVEL:.0%} against r, per criterion; "
               "lines: least-squares fits in log-log over the ranks where some m passes, the exponent with its "
               "95% percentile-bootstrap interval over seeds. Table: '<= m' is the grid's floor, '> m' none "
               "passes.", Table(("method", "l", "r", *names, f"largest failing m ({criteria[0]})"), rows)),
        Figure("e4_exponents", _exponent_plot(fits), "Fitted exponents with 95% bootstrap intervals beside the "
               "bound's 2.5 l (a worst-case sufficient condition: a typical target can be consistent with it, "
               "not test it).",
               Table(("method", "l", "criterion", "fitted exponent", "95% bootstrap CI", "bound 2.5 l", "points"),
                     fits)),
    ]


def _exponent_row(ax: Any, label: str, order: int, group: Sequence[RunRecord], epsilon: float, criterion: str,
                  colour: str, all_r: list, all_m: list) -> tuple:
    """Draw one criterion's needed ``m`` against ``r`` and its fit; return its row of the exponents table."""
    needed = _needed_by_rank(group, epsilon, criterion)
    name = f"{label}, l = {order}, {criterion}"
    filled = criterion == "recovery"
    style = dict(color=colour, marker="o", markerfacecolor=colour if filled else "none")
    if not needed:
        ax.plot([], [], linestyle="none", label=f"{name}: no m passes", **style)
        return (label, order, criterion, "-", "-", 2.5 * order, "no r with a needed m")
    r_, m_ = zip(*sorted(needed.items()))
    all_r += r_
    all_m += m_
    slope = _fit_exponent(r_, m_)
    if slope is None:
        ax.plot(r_, m_, linestyle="none", label=f"{name}: one r only", **style)
        return (label, order, criterion, "-", "-", 2.5 * order, "one r only")
    low, high = _exponent_interval(group, epsilon, criterion)
    c = math.exp(np.mean(np.log(m_)) - slope * np.mean(np.log(r_)))
    grid = np.geomspace(min(r_), max(r_), 20)
    ax.plot(r_, m_, linestyle="none", **style)
    ax.plot(grid, c * grid**slope, color=colour, linestyle="-" if filled else "--",
            label=f"{name}: m ~ r^{slope:.2f} [{low:.2f}, {high:.2f}]")
    return (label, order, criterion, f"{slope:.2f}", f"[{low:.2f}, {high:.2f}]", 2.5 * order, f"{len(needed)} ranks")


def _exponent_plot(fits: list[tuple]) -> MplFigure:
    fig, (ax,) = _new(width=6.5)
    # horizontal bars: method names of any length stay readable
    names = [f"{label}, l = {order}, {criterion}" for label, order, criterion, *_ in fits][::-1]
    values = [float(e) if e != "-" else math.nan for _, _, _, e, *_ in fits][::-1]
    cis = [tuple(float(v) for v in ci.strip("[]").split(", ")) if ci != "-" else (math.nan, math.nan)
           for _, _, _, _, ci, *_ in fits][::-1]
    err = np.array([[v - lo, hi - v] for v, (lo, hi) in zip(values, cis)]).T if fits else None
    ax.barh(names, values, xerr=err, capsize=4, label="fitted (95% bootstrap CI; none: no fit)")
    ax.scatter([b for *_, b, _ in fits][::-1], names, color="black", marker="|", s=400, label="bound 2.5 l",
               zorder=3)
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


#: Most panels of the generic figure; beyond, the caption says how many facets were left out.
MAX_FACETS = 12


def _varying(runs: Sequence[RunRecord]) -> list[str]:
    """Config keys (``target.dim``, ``options.tol``, ...) that take more than one value among ``runs``.

    The components (the x axis), the label (the curves) and the seed (the spread) are left out.
    """
    values: dict[str, set[str]] = defaultdict(set)
    for r in runs:
        for section in ("target", "options"):
            for k, v in (r.config.get(section) or {}).items():
                values[f"{section}.{k}"].add(repr(v))
    return [k for k, v in values.items() if len(v) > 1]


def _facet_key(r: RunRecord, keys: Sequence[str]) -> tuple:
    return tuple(repr(r.config[k.split(".")[0]].get(k.split(".")[1])) for k in keys)


def generic(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Relative error against ``m``, one curve per method, one panel per value of the keys that vary."""
    ok = _ok(runs)
    keys = _varying(ok)
    facets = _group(ok, lambda r: _facet_key(r, keys))
    shown = min(len(facets), MAX_FACETS)
    fig, axes = _panels(max(shown, 1), sharey=True)
    labels = sorted({r.label for r in ok})
    rows = []
    for i, (values, group) in enumerate(facets.items()):
        ax = axes[i] if i < shown else None
        for label, rs in _group(group, lambda r: r.label).items():
            stats = [(m, *np.percentile([r.relative_error for r in c], [25, 50, 75]), c)
                     for m, c in _group(rs, lambda r: r.components).items()]
            m_, q1, med, q3 = (np.array([s[i] for s in stats]) for i in range(4))
            if ax is not None:
                ax.errorbar(m_, np.maximum(med, ERROR_FLOOR), yerr=[med - q1, q3 - med], marker="o", capsize=3,
                            color=f"C{labels.index(label) % 10}", label=label)
            rows += [(*[v for v in values], label, m, _fmt(mid), _fmt(a), _fmt(b), _rate_cell(c, epsilon, "fit"),
                      _rate_cell(c, epsilon, "recovery") if main_criterion(c) == "recovery" else "-", len(c))
                     for m, a, mid, b, c in stats]
        if ax is not None:
            title = ", ".join(f"{k.split('.')[1]} = {v}" for k, v in zip(keys, values))
            ax.set(yscale="log", xlabel="components m", title=title or "all runs")
    axes[0].set_ylabel("relative error (median, quartiles)")
    axes[0].legend(fontsize="small")
    left = len(facets) - shown
    note = f" {left} more facets are in the table only." if left else ""
    return [Figure("error_vs_components", fig, "Final relative error against m (median and quartiles over seeds), "
                   f"one panel per combination of the settings that vary ({', '.join(keys) or 'none'}), never "
                   f"averaged over them.{note}",
                   Table((*[k.split(".")[1] for k in keys], "method", "m", "error median", "error q1", "error q3",
                          f"fit rate (<= {epsilon:g}) [95% CI]", "recovery rate [95% CI]", "runs"), rows))]


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
