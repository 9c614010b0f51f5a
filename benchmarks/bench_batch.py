"""Runs per second: ``decompose_batch`` over B seeds against a loop of single runs.

Usage: python benchmarks/bench_batch.py [--batch 64] [--repeats 3]

Order 3, d = 50, m = 20, an orthonormal rank-5 target (seed 1000), seeds 0..B-1, two
regimes: a fixed budget (``tol = 0``: every run takes every step, as in a
sweep of trajectories) and to the default tolerance 1e-4 (each run stops at
its own step; the batch ends with its slowest run). Each side is the best of ``--repeats``
windows taken in alternation, in CPU time of this process (``time.process_time``). Run
single-threaded (``OPENBLAS_NUM_THREADS=1``).

Last, a bound: the step's two matrix products alone (``W [W; A]ᵀ`` and ``M [W; A]``, batched over
the B runs, in the ``k = m + r = 25`` coordinates that ``gd`` runs this problem in), timed for the
budget's steps against the loop of single runs: no NumPy arrangement of the step that forms these
two products per run can beat the loop by more than this ratio.
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import cpu_best

import overtensor as ot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="numpy")
    args = parser.parse_args()
    target = ot.make_target(50, 5, 3, seed=1000)  # a seed apart from the runs' seeds
    seeds = list(range(args.batch))
    print(f"# B = {args.batch}, m = 20, d = 50, order 3, backend {args.backend}")
    print("| regime | steps per run (mean / max) | loop of single runs, runs/s | batch, runs/s | speedup |")
    print("|---|---|---|---|---|")
    for name, options in [("fixed budget, 500 steps", dict(max_steps=500, tol=0.0)),
                          ("to tol 1e-4 (max 10000 steps)", dict(max_steps=10_000, tol=1e-4))]:
        options["backend"] = args.backend
        singles = [ot.decompose(target, 20, seed=s, **options) for s in seeds]
        batch = ot.decompose_batch(target, 20, seeds=seeds, **options)
        assert [r.steps for r in singles] == [r.steps for r in batch]
        loop = batched = np.inf
        for _ in range(args.repeats):  # alternate, so that a noisy machine hits both alike
            loop = min(loop, cpu_best(lambda: [ot.decompose(target, 20, seed=s, **options) for s in seeds], 1))
            batched = min(batched, cpu_best(lambda: ot.decompose_batch(target, 20, seeds=seeds, **options), 1))
        steps = np.array([r.steps for r in batch])
        print(f"| {name} | {steps.mean():.0f} / {steps.max()} | {len(seeds) / loop:.1f} | "
              f"{len(seeds) / batched:.1f} | {loop / batched:.1f} |", flush=True)
        if options["tol"] == 0.0:
            fixed_loop, budget = loop, int(options["max_steps"])
    rng = np.random.default_rng(0)
    S = rng.standard_normal((args.batch, 25, 25))  # [W; A] in k = 25 coordinates, per run
    M = rng.standard_normal((args.batch, 20, 25))

    def products() -> None:
        for _ in range(budget):
            S[:, :20] @ np.swapaxes(S, -1, -2)
            M @ S

    alone = min(cpu_best(products, 1) for _ in range(args.repeats))
    print(f"\nthe two products alone, batched, for the fixed budget: {alone:.3f} s CPU; the loop of single runs "
          f"{fixed_loop:.3f} s: at most {fixed_loop / alone:.1f}x for any arrangement that forms them")


if __name__ == "__main__":
    main()
