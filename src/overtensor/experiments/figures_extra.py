"""Figures of E6 (final convergence at l = 2, 3, 4), E7 (overcomplete) and E8 (noisy dense targets).

Every figure is faceted by the keys its experiment varies (order, or d) and has the
table it plots. Success rates carry 95% Wilson intervals
(:func:`overtensor.experiments.amplification.wilson`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .amplification import wilson
from .figures import ERROR_FLOOR, Figure, Table, _group, _new
from .store import RunRecord

__all__ = ["e1_exact", "e6", "e7", "e8", "recovered", "MIN_COSINE"]

#: A true component counts as found when its match has at least this ``|cos|``.
MIN_COSINE = 0.99


def _ok(runs: Sequence[RunRecord]) -> list[RunRecord]:
    return [r for r in runs if r.status == "ok" and r.relative_error is not None]


def _t(r: RunRecord, name: str) -> object:
    return r.config["target"].get(name)


def recovered(r: RunRecord) -> bool:
    """Every true component matched at ``|cos| >= 0.99`` and nothing spurious (needs ``record.recovery``)."""
    m = r.metrics
    return (m.get("recovery_missing") == 0 and m.get("recovery_spurious") == 0
            and (m.get("recovery_min_cosine") or 0.0) >= MIN_COSINE)


def _median(values: Sequence[float | None]) -> str:
    a = np.asarray([v for v in values if v is not None], dtype=float)
    return f"{float(np.median(a)):.3g}" if a.size else "-"


def _rate(flags: Sequence[bool]) -> tuple[float, float, float]:
    k, n = int(sum(flags)), len(flags)
    lo, hi = wilson(k, n)
    return k / n, lo, hi


# ----------------------------------------------------------------------------- E1


def e1_exact(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """The lazy residual at the count: the smallest ``m`` with ``m d >= C(d+l-1, l)``, and the AH cases."""
    from ..solvers.lazy_direct import ALEXANDER_HIRSCHOWITZ, tangent_dimension

    rows = []
    for (order, dim, m), group in _group(_ok(runs), lambda r: (_t(r, "order"), _t(r, "dim"), r.components)).items():
        full = math.comb(dim + order - 1, order)
        if not (m * dim >= full > (m - 1) * dim):
            continue
        res = np.array([r.relative_error for r in group])
        solvers = sorted({str(r.metrics.get("solver", "cg")) for r in group})
        exception = ALEXANDER_HIRSCHOWITZ.get((order, dim)) == m
        rows.append((order, dim, m, m * dim, full, "yes" if exception else "no", tangent_dimension(dim, order, m),
                     "/".join(solvers), len(group), f"{float(np.median(res)):.2g}", f"{float(res.max()):.2g}"))
    if not rows:
        return []
    fig, (ax,) = _new(width=6)
    labels = [f"l={r[0]}, d={r[1]}" for r in rows]
    ax.bar(range(len(rows)), [max(float(r[10]), ERROR_FLOOR) for r in rows],
           color=["C3" if r[5] == "yes" else "C0" for r in rows])
    ax.set_xticks(range(len(rows)), labels, rotation=45, ha="right", fontsize="small")
    ax.set(yscale="log", ylabel="largest residual over seeds", title="E1: at the count m d >= C(d+l-1, l)")
    return [Figure("e1_at_the_count", fig, "The lazy residual at the smallest m with m d >= C(d+l-1, l) "
                   "(largest over seeds; red: an Alexander–Hirschowitz exception, where the tangent space is one "
                   "dimension short and the residual cannot vanish). Solver lstsq: least squares on the explicit "
                   "Jacobian; cg: conjugate gradients on the normal equations (an upper bound where it stops at "
                   "its iteration cap).",
                   Table(("l", "d", "m", "m d", "C(d+l-1,l)", "AH exception", "dim of tangent space", "solver",
                          "seeds", "median residual", "max residual"), rows))]


# ----------------------------------------------------------------------------- E6


def e6(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Relative error against the step, one panel per order, one line per seed; polish phase dashed.

    The polish is Levenberg–Marquardt: its iterations continue the step axis, marked by dots.
    """
    series = _group([r for r in _ok(runs) if r.history], lambda r: (_t(r, "order"), r.label, r.components))
    orders = sorted({k[0] for k in series})
    fig, axes = _new(max(len(orders), 1), width=5.0)
    rows = []
    for ax, order in zip(axes, orders):
        for i, ((_, label, m), group) in enumerate(k for k in series.items() if k[0][0] == order):
            for j, r in enumerate(group):
                h = r.history or {}
                step = np.asarray(h["step"], dtype=float)
                err = np.maximum(np.nan_to_num(np.asarray(h["relative_error"], dtype=float), nan=1.0), ERROR_FLOOR)
                phase = np.asarray(h.get("phase", [0] * len(step)))
                first = phase == 0
                ax.plot(step[first], err[first], color=f"C{i}", alpha=0.7, lw=1.2,
                        label=f"{label}, m = {m}" if j == 0 else None)
                if (~first).any():  # the polish phase, joined to the method's last row
                    k0 = max(int(np.flatnonzero(first)[-1]), 0) if first.any() else 0
                    idx = np.r_[k0, np.flatnonzero(~first)]
                    ax.plot(step[idx], err[idx], "--", marker=".", color=f"C{i}", alpha=0.9, lw=1.2,
                            label="then polish (LM iterations)" if j == 0 else None)
            rows.append(_e6_row(order, label, m, group))
        ax.set_xscale("symlog", linthresh=10)
        ax.set(yscale="log", xlabel="step (LM iterations after the dots' start)", ylabel="relative error",
               title=f"E6: l = {order}" + (" (fit only: not identifiable)" if order == 2 else ""))
        ax.legend(fontsize="x-small")
    return [Figure("e6_error_vs_step", fig, "Relative error against the step (linear up to 10, logarithmic "
                   f"beyond), one line per seed, an exact 0 drawn at {ERROR_FLOOR:g}. Recover + polish: gd to "
                   "1e-2, recover r̂ components, then Levenberg–Marquardt at m = r̂ (dashed, one dot per "
                   "iteration). Recovered: every true component at |cos| >= 0.99, nothing spurious (not "
                   "defined at l = 2, where a matrix's rank-r factorization is not unique).",
                   Table(("l", "method", "m", "seeds", "reached tol", "median method steps",
                          "median polish iterations", "median final error", "recovered"), rows))]


def _e6_row(order: int, label: str, m: int, group: list[RunRecord]) -> tuple:
    polished = [r for r in group if "polished_relative_error" in r.metrics]
    final = [r.metrics.get("polished_relative_error", r.relative_error) for r in group]
    reached = [bool(r.metrics.get("polished_converged", r.converged)) for r in group]
    rec = "-" if order == 2 or not any("recovery_missing" in r.metrics for r in group) else \
        f"{sum(recovered(r) for r in group)}/{len(group)}"
    return (order, label, m, len(group), f"{sum(reached)}/{len(group)}", _median([r.steps for r in group]),
            _median([r.metrics["polished_steps"] for r in polished]) if polished else "-", _median(final), rec)


# ----------------------------------------------------------------------------- E7


def e7(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Worst matched direction (median min ``|cos|``) against ``r / d``, one panel per ``d``, one curve per
    method; the table adds the fit and recovery rates."""
    by_d = _group(_ok(runs), lambda r: _t(r, "dim"))
    fig, axes = _new(max(len(by_d), 1), width=5.0, shared=True)
    rows = []
    for ax, (d, group) in zip(axes, by_d.items()):
        labels = _group(group, lambda r: r.label)
        for i, (label, rs) in enumerate(labels.items()):
            pts = []
            for rank, cell in _group(rs, lambda r: _t(r, "rank")).items():
                fit = _rate([(r.relative_error or 0.0) <= epsilon for r in cell])
                rec = _rate([recovered(r) for r in cell])
                cos = np.array([r.metrics.get("recovery_min_cosine") or 0.0 for r in cell])
                q = np.quantile(cos, [0.25, 0.5, 0.75])
                pts.append((rank / d * (1 + 0.015 * (i - len(labels) / 2)), *q))
                ms = sorted({r.components for r in cell})
                rows.append((d, rank, f"{rank / d:.2f}", label, "/".join(map(str, ms)), len(cell),
                             f"{fit[0]:.2f} [{fit[1]:.2f}, {fit[2]:.2f}]",
                             f"{rec[0]:.2f} [{rec[1]:.2f}, {rec[2]:.2f}]",
                             _median([r.relative_error for r in cell]), f"{q[1]:.4f}"))
            x, q1, med, q3 = map(np.array, zip(*pts))
            ax.errorbar(x, med, yerr=[med - q1, q3 - med], marker="o", capsize=3, color=f"C{i}", label=label)
        ax.axvline(math.sqrt(d), color="grey", ls=":", label="r = d^1.5")
        ax.axhline(MIN_COSINE, color="grey", ls="--", lw=1, label="|cos| = 0.99")
        ax.set(xlabel="r / d", ylabel="worst true direction's match, min |cos| (median, quartiles)",
               title=f"E7: d = {d}, l = 4")
        ax.legend(fontsize="x-small")
    return [Figure("e7_overcomplete", fig, "The worst-matched true direction after recover (median min |cos| "
                   "over seeds, quartile bars) against r / d. Table: fit rate (relative error <= "
                   f"{epsilon:g}) and recovery rate (every component at |cos| >= 0.99, nothing spurious), "
                   "each with its 95% Wilson interval.",
                   Table(("d", "r", "r/d", "method", "m", "seeds", "fit [95% Wilson]", "recovered [95% Wilson]",
                          "median error", "median min |cos|"), rows))]


# ----------------------------------------------------------------------------- E8


def e8(runs: Sequence[RunRecord], epsilon: float) -> list[Figure]:
    """Recovery error (recovered components against the clean target) against the noise level."""
    group = [r for r in _ok(runs) if "recovered_error" in r.metrics]
    fig, (ax, bx) = _new(2, width=5.4)
    rows = []
    for i, ((label, m), rs) in enumerate(_group(group, lambda r: (r.label, r.components)).items()):
        pts = []
        for noise, cell in _group(rs, lambda r: _t(r, "noise") or 0.0).items():
            err = np.array([r.metrics["recovered_error"] for r in cell])
            cos = np.array([r.metrics.get("recovery_min_cosine") or 0.0 for r in cell])
            q = np.quantile(err, [0.25, 0.5, 0.75])
            pts.append((max(noise, 1e-4), *q, float(np.median(1 - cos))))
            rec = _rate([recovered(r) for r in cell])
            rows.append((noise, label, m, len(cell), _median([r.relative_error for r in cell]),
                         _median([r.metrics.get("clean_relative_error", r.relative_error) for r in cell]),
                         f"{q[1]:.3g}", f"{float(np.median(cos)):.4f}", f"{rec[0]:.2f} [{rec[1]:.2f}, {rec[2]:.2f}]"))
        x, q1, med, q3, one_minus = map(np.array, zip(*pts))
        ax.errorbar(x, med, yerr=[med - q1, q3 - med], marker="o", capsize=3, color=f"C{i}",
                    label=f"{label}, m = {m}")
        bx.plot(x, np.maximum(one_minus, ERROR_FLOOR), marker="o", color=f"C{i}", label=f"{label}, m = {m}")
    grid = np.array(sorted({max(row[0], 1e-4) for row in rows}))
    ax.plot(grid, grid, "k:", label="noise level")
    ax.set(xscale="log", yscale="log", xlabel="noise ‖N‖ / ‖T*‖ (0 drawn at 1e-4)",
           ylabel="‖recovered - T*‖ / ‖T*‖ (clean T*)", title="E8: recovery error vs noise")
    bx.set(xscale="log", yscale="log", xlabel="noise ‖N‖ / ‖T*‖", ylabel="1 - min |cos| (median)",
           title="E8: worst direction error")
    ax.legend(fontsize="x-small")
    bx.legend(fontsize="x-small")
    return [Figure("e8_noise", fig, "Left: the recovered components' distance to the clean target (median, "
                   "quartiles over seeds), against the relative noise norm. Right: the worst matched direction. "
                   "Table: fit to the noisy input, the method's model against the clean target, the recovered "
                   "model against it, and the recovery rate (|cos| >= 0.99, nothing spurious; 95% Wilson).",
                   Table(("noise", "method", "m", "seeds", "median fit (noisy)", "median clean error",
                          "median recovered error", "median min |cos|", "recovered [95% Wilson]"), rows))]
