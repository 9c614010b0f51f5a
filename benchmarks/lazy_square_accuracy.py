"""E1 at the threshold: the lazy residual at m d = C(d+l-1, l) by CG and by the direct solve.

For each case and seed: the residual CG reports (a difference of squares), the residual of
CG's solution measured independently (the dense distance of its model to the target), the
direct solve's residual (``solver="lstsq"``), and least squares on the dense ``d^l`` Jacobian
(NumPy, independent code). Generic square cases should be 0 to rounding; the
Alexander-Hirschowitz cases (l = 3, d = 5; l = 4, d = 3, 4, 5) cannot be.

    python benchmarks/lazy_square_accuracy.py
"""

from __future__ import annotations

import itertools
import math

import numpy as np

import overtensor as ot
from overtensor.solvers.gd import initial_params
from overtensor.solvers.problem import make_problem

CASES = [(10, 3), (20, 3), (9, 4), (5, 3), (3, 4), (5, 4)]
SEEDS = range(5)


def dense_jacobian(W: np.ndarray, order: int) -> np.ndarray:
    """``(d^l, m d)``, column ``(i, a)`` = ``sym(w̄_i^{⊗(l-1)} ⊗ e_a)`` averaged over axis permutations."""
    d = W.shape[1]
    perms = list(itertools.permutations(range(order)))
    cols = []
    for w in W:
        block = w
        for _ in range(order - 2):
            block = np.multiply.outer(block, w)
        block = np.multiply.outer(block, np.eye(d)) if order > 1 else np.eye(d)
        sym = sum(np.transpose(block, p + (order,)) for p in perms) / len(perms)
        cols.append(sym.reshape(d ** order, d))
    return np.concatenate(cols, axis=1)


def main() -> None:
    print("| l | d | m | m d = C | seed | CG reported | CG measured | lstsq | dense lstsq |")
    print("|--:|--:|--:|:--|--:|--:|--:|--:|--:|")
    for d, order in CASES:
        C = math.comb(d + order - 1, order)
        m = math.ceil(C / d)
        for seed in SEEDS:
            target = ot.make_target(d, 1, order, seed=100 + seed)
            T = target.to_dense().ravel()
            cg = ot.decompose(target, m, "lazy", seed=seed, solver="cg")
            measured = np.linalg.norm(cg.model.to_dense().ravel() - T) / np.linalg.norm(T)
            direct = ot.decompose(target, m, "lazy", seed=seed, solver="lstsq")
            W = initial_params(make_problem([target], m, [seed]), np.ones(1))[0]
            if d ** order * m * d <= 2e7:
                J = dense_jacobian(W, order)
                x, *_ = np.linalg.lstsq(J, T, rcond=1e-10)
                brute = f"{np.linalg.norm(T - J @ x) / np.linalg.norm(T):.2g}"
            else:
                brute = "-"
            print(f"| {order} | {d} | {m} | {m * d} = {C} | {seed} | {cg.relative_error:.2g} | {measured:.2g} | "
                  f"{direct.relative_error:.2g} | {brute} |")


if __name__ == "__main__":
    main()
