"""How far float32 gets: the smallest relative error it reaches, against float64.

Usage: python benchmarks/bench_float32.py

Order-3 factored targets; for each, gd in float32 and float64 from the same
seed: (a) with ``tol = 1e-7`` (the loop stops where its own error estimate
gives out) and (b) for a fixed budget (``tol = 0``). Then the floor of the
float32 iteration itself: m = r, started next to the exact optimum, 2000 steps.
Every error shown is recomputed in float64 from the parameters.
"""

from __future__ import annotations

import numpy as np

import overtensor as ot
from overtensor.backend import get_backend, to_numpy
from overtensor.solvers import base
from overtensor.solvers.descent import DescentConfig, Recorder, descend
from overtensor.solvers.problem import make_problem

CASES = [(50, 5, 20, "orthonormal"), (100, 10, 50, "gaussian"), (200, 10, 40, "gaussian")]  # d, r, m, kind


def main() -> None:
    print("| d | r | m | kind | float32, tol 1e-7: steps, error | float32, 3000 steps | float64, 3000 steps |")
    print("|---|---|---|---|---|---|---|")
    for d, r, m, kind in CASES:
        target = ot.make_target(d, r, 3, kind=kind, seed=100)
        early = ot.decompose(target, m, seed=1, tol=1e-7, max_steps=3000, dtype="float32")
        f32 = ot.decompose(target, m, seed=1, tol=0.0, max_steps=3000, dtype="float32")
        f64 = ot.decompose(target, m, seed=1, tol=0.0, max_steps=3000)
        print(f"| {d} | {r} | {m} | {kind} | {early.steps}, {early.relative_error:.1e} | "
              f"{f32.relative_error:.1e} | {f64.relative_error:.1e} |", flush=True)

    print()
    print("| d | r | float32 from next to the optimum, 2000 steps | float64, same |")
    print("|---|---|---|---|")
    for d, r, _, kind in CASES:
        target = ot.make_target(d, r, 3, kind=kind, seed=100)
        errors = [near_optimum(target, dtype) for dtype in ("float32", "float64")]
        # 0 means below what the float64 evaluation resolves (about 1e-8)
        print(f"| {d} | {r} | " + " | ".join(f"{e:.1e}" if e > 0 else "< 1e-8" for e in errors) + " |")


def near_optimum(target: ot.SymCP, dtype: str) -> float:
    problem = make_problem([target], target.rank, [0])
    W = np.sqrt(target.weights)[:, None] * target.vectors
    W = (W * (1 + 1e-3 * np.random.default_rng(0).standard_normal(W.shape)))[None]
    on = get_backend("numpy", None, dtype)
    op, target_sq = problem.on(on)
    config = DescentConfig(base.default_step_size(problem, 0), 0.0, 0.0, 2000, 1000)
    out = descend(on.asarray(W), op, target_sq, config, Recorder(1, 0.0))
    return float(base.relative_errors(problem, to_numpy(out.W).astype(np.float64), "balanced")[0])


if __name__ == "__main__":
    main()
