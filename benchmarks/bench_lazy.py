"""Lazy (NTK) projection: matrix-free CG against least squares on the explicit Jacobian.

Usage: python benchmarks/bench_lazy.py [--dims 10 20 30] [--factors 0.5 0.8 1.25] [--repeats 3]

For a rank-1 order-3 target and ``m = factor · C(d+2, 3)/d`` (the lazy
threshold), times ``overtensor.decompose(..., method="lazy")`` (CG on
``K U = b``, ``O(m² d)`` per iteration) and ``scipy.linalg.lstsq`` on the dense
Jacobian of ``U ↦ Σ_i sym(w̄_i^{⊗2} ⊗ u_i)`` written in an orthonormal basis of
``Sym^3(R^d)`` (``C(d+2, 3)`` rows, ``m d`` columns; the full ``d^3`` rows
give the same residual with about ``6x`` more rows). Prints a markdown table:
seconds each (best of ``repeats``), their ratio, CG iterations, and whether the
two relative residuals agree to ``1e-6``. Then times one solve at
``m = 2000, d = 40``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import platform
import time
from collections import Counter

import numpy as np
import scipy.linalg

import overtensor as ot
from overtensor.solvers.base import initial_params
from overtensor.solvers.lazy import lazy_threshold
from overtensor.solvers.problem import make_problem


def symmetric_basis(dim: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted multi-indices ``(n, l)`` and ``sqrt`` of their multiplicities ``(n,)``.

    ``T ↦ (sqrt(mult_α) T_α)_α`` is an isometry from ``Sym^l(R^d)`` onto ``R^n``.
    """
    idx = np.array(list(itertools.combinations_with_replacement(range(dim), order)))
    mult = np.array([math.factorial(order) / math.prod(math.factorial(c) for c in Counter(row).values())
                     for row in idx])
    return idx, np.sqrt(mult)


def jacobian(directions: np.ndarray, idx: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(n, m d)``: entry ``(α, (i, a))`` of ``sym(w̄_i^{⊗(l-1)} ⊗ e_a)`` in the basis above.

    ``sym(w^{⊗(l-1)} ⊗ e_a)_α = (1/l) Σ_p [α_p = a] Π_{q≠p} w_{α_q}``.
    """
    m, d = directions.shape
    n, l = idx.shape
    J = np.zeros((n, m, d))
    rows = np.arange(n)[:, None]
    for p in range(l):
        others = np.prod(directions[:, idx[:, [q for q in range(l) if q != p]]], axis=-1)  # (m, n)
        np.add.at(J, (rows, np.arange(m)[None, :], idx[:, p][:, None]), others.T / l)
    return (J * scale[:, None, None]).reshape(n, m * d)


def best_time(fn, repeats: int):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--factors", type=float, nargs="+", default=[0.5, 0.8, 1.25])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# {platform.node()}, {platform.processor() or platform.machine()}, numpy {np.__version__}, "
          f"scipy {scipy.__version__}, python {platform.python_version()}")
    print("| d | m | m / threshold | Jacobian | CG s | CG iterations | lstsq s | lstsq / CG | residual CG | "
          "residual lstsq | agree |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for d in args.dims:
        target = ot.make_target(d, 1, 3, seed=0)
        idx, scale = symmetric_basis(d, 3)
        T = np.prod(target.vectors[0][idx], axis=1) * scale * target.weights[0]
        for f in args.factors:
            m = max(1, round(f * lazy_threshold(d, 3)))
            t_cg, res = best_time(lambda: ot.decompose(target, m, method="lazy", seed=1), args.repeats)
            W = initial_params(make_problem([target], m, [1]), np.ones(1))[0]

            def brute() -> float:
                J = jacobian(W, idx, scale)
                x = scipy.linalg.lstsq(J, T)[0]
                return float(np.linalg.norm(T - J @ x) / np.linalg.norm(T))

            t_ls, ls = best_time(brute, 1 if d >= 30 else args.repeats)
            agree = abs(res.relative_error - ls) <= 1e-6
            print(f"| {d} | {m} | {f:g} | {len(T)} x {m * d} | {t_cg:.3f} | {res.steps} | {t_ls:.3f} | "
                  f"{t_ls / t_cg:.1f} | {res.relative_error:.3e} | {ls:.3e} | {'yes' if agree else 'NO'} |")
    target = ot.make_target(40, 1, 3, seed=0)
    t, res = best_time(lambda: ot.decompose(target, 2000, method="lazy", seed=1), args.repeats)
    print(f"\nm = 2000, d = 40, order 3, rank-1 target: {t:.2f} s per lazy solve, {res.steps} CG iterations, "
          f"relative residual {res.relative_error:.2e} (m / threshold = {res.info['m_over_threshold']:.2f})")


if __name__ == "__main__":
    main()
