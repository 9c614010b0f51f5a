"""Time per gradient step against the step's two dominant matrix products; small-problem steps/s.

Usage: python benchmarks/bench_step.py [--repeats 5] [--quick]

1. For each ``(m, d)``: the step, i.e. the function the descent loop calls at every step
   (``overtensor.solvers.step.stepper``, resolved once as the loop does), ``N`` times from the
   run's start, against the two products that bound a step from below, ``W̄ W̄ᵀ`` and an
   ``(m × m)·(m × d)`` product, ``N`` times, in the same process; and, for reference, a whole
   ``overtensor.decompose(target, m, max_steps=N, tol=0.0)`` call divided by ``N`` (which adds
   the call's fixed costs, its checks every 10 steps and its history rows). Order 3, factored
   gaussian target of rank 10. The run is kept in all ``d`` coordinates
   (``subspace.SPAN_FRACTION = 0``): ``gd`` would otherwise run a factored target with
   ``m + r <= d / 2`` in the span of ``[W_0; A]`` (``k = m + r`` coordinates), which is the
   same run at ``d / k`` times less per step (``python benchmarks/bench_order4.py``). Each
   side is the best of ``--repeats`` windows taken in alternation, timed in **CPU time** of
   this process (``time.process_time``), so that other jobs on a shared machine inflate neither side.
2. Peak memory of one step at ``m = 10^4, d = 100`` (``tracemalloc``, which NumPy reports to).
3. Steps per second at ``m = 20, d = 50`` (orthonormal rank-5 target, a fixed budget) against a
   minimal NumPy step on the same trajectory: the same update in 2-D arrays with nothing else.

Run single-threaded (``OPENBLAS_NUM_THREADS=1``), from the repository root.
"""

from __future__ import annotations

import argparse
import tracemalloc

import numpy as np
from _timing import cpu_best

import overtensor as ot
from overtensor.backend import array_namespace
from overtensor.solvers import subspace
from overtensor.solvers.problem import make_problem
from overtensor.solvers.step import arrangement, balanced_step, stepper

SIZES = [(20, 50, 2000), (100, 50, 500), (500, 100, 100), (2000, 200, 10), (200, 5000, 40), (3200, 100, 6)]



def step_vs_products(m: int, d: int, steps: int, repeats: int) -> tuple[float, float, float]:
    """``(CPU s per step, CPU s per step of a decompose call, CPU s of the two products)``, best of
    ``repeats`` each: the step is the function the loop calls at every step (``stepper``), run
    ``steps`` times from the run's start; the call adds its fixed costs (start, checks, history
    rows, the final evaluation, the result) spread over its ``steps``."""
    target = ot.make_target(d, 10, 3, kind="gaussian", seed=0)
    rng = np.random.default_rng(0)
    W = rng.standard_normal((1, m, d))
    G = rng.standard_normal((1, m, m))
    subspace.SPAN_FRACTION = 0.0  # the step on d coordinates, not the run in the span
    start = ot.decompose(target, m, seed=0, max_steps=0, tol=0.0)
    problem = make_problem([target], m, [0])
    W0 = start.params[None]

    def step_loop() -> None:
        W = W0
        step = stepper(array_namespace(W), W, problem.op, start.info["step_size"], 0.0)
        for _ in range(steps):
            W = step(W).W

    def run() -> None:
        ot.decompose(target, m, seed=0, max_steps=steps, tol=0.0)

    def products() -> None:
        for _ in range(steps):
            W @ np.swapaxes(W, -1, -2)
            G @ W

    run()  # warm-up
    step = call = mm = np.inf
    for _ in range(repeats):  # alternate, so that a noisy machine hits all alike
        step = min(step, cpu_best(step_loop, 1) / steps)
        call = min(call, cpu_best(run, 1) / steps)
        mm = min(mm, cpu_best(products, 1) / steps)
    return step, call, mm


def peak_step_memory(m: int, d: int) -> float:
    """Peak bytes allocated during one step at ``(m, d)``, above its inputs."""
    problem = make_problem([ot.make_target(d, 10, 3, kind="gaussian", seed=0)], m, [0])
    W = np.random.default_rng(0).standard_normal((1, m, d))
    xp = array_namespace(W)
    tracemalloc.start()
    balanced_step(xp, W, problem.op, 1e-3, 0.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def minimal_numpy(target: ot.SymCP, W0: np.ndarray, eta: float, steps: int) -> np.ndarray:
    """The balanced-model step with nothing else: no checks, no history, 2-D arrays."""
    A, c, W = target.vectors, target.weights, W0.copy()
    for _ in range(steps):
        n = np.sqrt(np.einsum("ij,ij->i", W, W))
        Wb = W / n[:, None]
        G, C = Wb @ Wb.T, Wb @ A.T
        R = (G * G) @ (n[:, None] * W) - (C * C * c) @ A
        Rv = np.einsum("ij,ij->i", R, Wb)
        W = W - eta * (3 * n[:, None] * R - Rv[:, None] * W)
    return W


def small_problem(repeats: int, steps: int = 4000) -> tuple[float, float, float]:
    """``(overtensor steps/s, minimal NumPy steps/s, max relative difference of the end points)``."""
    target = ot.make_target(50, 5, 3, seed=1000)

    def ours() -> ot.DecompositionResult:
        return ot.decompose(target, 20, seed=0, max_steps=steps, tol=0.0)

    res = ours()
    start = ot.decompose(target, 20, seed=0, max_steps=0, tol=0.0).params  # the same start and step
    reference = minimal_numpy(target, start, res.info["step_size"], steps)
    difference = float(np.max(np.abs(reference - res.params)) / np.max(np.abs(reference)))
    a = b = np.inf
    for _ in range(repeats):
        a = min(a, cpu_best(ours, 1))
        b = min(b, cpu_best(lambda: minimal_numpy(target, start, res.info["step_size"], steps), 1))
    return steps / a, steps / b, difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="two sizes only")
    args = parser.parse_args()
    print(f"# numpy {np.__version__}, CPU time, float64")
    print("| m | d | arrangement | ms / step | ms, W̄W̄ᵀ + (m×m)(m×d) | ratio | decompose, ms / step |")
    print("|---|---|---|---|---|---|---|")
    t = ot.make_target(10, 2, 3, seed=0)
    for m, d, steps in SIZES[:2] if args.quick else SIZES:
        step, call, mm = step_vs_products(m, d, steps, args.repeats)
        kind = arrangement(make_problem([t], 1, [0]).op, m, d)
        print(f"| {m} | {d} | {kind} | {1e3 * step:.3f} | {1e3 * mm:.3f} | {step / mm:.2f} | {1e3 * call:.3f} |",
              flush=True)
    if not args.quick:
        print(f"\npeak memory of one step at m = 10^4, d = 100: {peak_step_memory(10_000, 100) / 1e6:.0f} MB")
    ours, theirs, diff = small_problem(args.repeats)
    print(f"\nm = 20, d = 50: overtensor {ours:.0f} steps/s, minimal NumPy step {theirs:.0f} steps/s "
          f"(ratio {ours / theirs:.2f}); end points differ by {diff:.1e} relative after 4000 steps")


if __name__ == "__main__":
    main()
