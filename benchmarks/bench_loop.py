"""What the descent loop costs on top of its steps, at ``m = 20, d = 50`` (and the step at (500, 100)).

Usage: python benchmarks/bench_loop.py [--repeats 7] [--steps 20000]

Four ways to take the same ``--steps`` balanced steps on one run (orthonormal rank-5 target,
order 3, the default step size), each the best of ``--repeats`` windows taken in alternation,
in **CPU time** of this process (``time.process_time``), so other jobs on a shared machine
inflate all alike:

1. ``minimal``: the balanced step written in 2-D NumPy with nothing else (bench_step.py's);
2. ``step only``: :func:`overtensor.solvers.step.balanced_step` in a bare loop: the library's
   step without the loop; ``stepper``: the same with the step resolved once by
   :func:`overtensor.solvers.step.stepper`, as the loop does (on NumPy, plain NumPy calls);
3. ``decompose``: ``overtensor.decompose(..., max_steps=N, tol=0)``, the whole run with its
   checks every 10 steps and a history row every 10 steps (the default), which on this problem
   runs in the span of ``[W_0; A]`` (``k = m + r = 25`` coordinates, ``solvers/subspace.py``);
4. the same kept in all ``d = 50`` coordinates (``subspace.SPAN_FRACTION = 0``): the arithmetic
   of (1) and (2), and the same with ``record_every = N`` (checks only).

``loop overhead`` is (4) - ``stepper`` per step. Last, ``decompose`` at ``(m, d) = (500, 100)``
(factored gaussian rank-10 target), per step. Run single-threaded (``OPENBLAS_NUM_THREADS=1``)
from the repository root.
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import cpu_best, cpu_best_alternating
from bench_step import minimal_numpy

import overtensor as ot
from overtensor.backend import array_namespace
from overtensor.solvers import subspace
from overtensor.solvers.problem import make_problem
from overtensor.solvers.step import balanced_step, stepper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20_000)
    args = parser.parse_args()
    n = args.steps
    target = ot.make_target(50, 5, 3, seed=1000)
    start = ot.decompose(target, 20, seed=0, max_steps=0, tol=0.0)
    eta, W0, op = start.info["step_size"], start.params, make_problem([target], 20, [0]).op

    def step_only() -> None:
        W = W0[None]
        for _ in range(n):
            W = balanced_step(np, W, op, eta, 0.0).W

    def resolved() -> None:
        W = W0[None]
        step = stepper(array_namespace(W), W, op, eta, 0.0)  # the namespace descend resolves
        for _ in range(n):
            W = step(W).W

    def in_all_coordinates(**options: int) -> None:
        subspace.SPAN_FRACTION = 0.0
        try:
            ot.decompose(target, 20, seed=0, max_steps=n, tol=0.0, **options)
        finally:
            subspace.SPAN_FRACTION = span

    span = subspace.SPAN_FRACTION
    runs = {
        "minimal": lambda: minimal_numpy(target, W0, eta, n),
        "step only": step_only,
        "stepper": resolved,
        "decompose (default: in the span, k = 25)": lambda: ot.decompose(target, 20, seed=0, max_steps=n, tol=0.0),
        "decompose in all d = 50 coordinates": in_all_coordinates,
        "the same, record_every = N": lambda: in_all_coordinates(record_every=n),
    }
    best = cpu_best_alternating(runs, args.repeats)
    print(f"# m = 20, d = 50, {n} steps, CPU time, best of {args.repeats}")
    print("| run | steps/s | µs / step | vs minimal |")
    print("|---|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {n / seconds:.0f} | {1e6 * seconds / n:.1f} | {best['minimal'] / seconds:.2f} |")
    full, checks = best["decompose in all d = 50 coordinates"], best["the same, record_every = N"]
    print(f"\nloop overhead: {1e6 * (full - best['stepper']) / n:.1f} µs / step "
          f"({1e6 * (checks - best['stepper']) / n:.1f} without history rows)")
    big = ot.make_target(100, 10, 3, kind="gaussian", seed=0)
    per_step = min(cpu_best(lambda: ot.decompose(big, 500, seed=0, max_steps=100, tol=0.0), 1)
                   for _ in range(args.repeats)) / 100
    print(f"(m, d) = (500, 100): {1e3 * per_step:.3f} ms / step (decompose, 100 steps, best of {args.repeats})")


if __name__ == "__main__":
    main()
