"""Beyond-lazy (with and without merge-and-recycle) vs plain GD on the recycling case.

Usage: python benchmarks/recycling.py [--seeds 6] [--gd-steps 50000]

Orthonormal rank-10 order-3 targets in d = 100 with weights spread 30x
(``make_target(100, 10, 3, weights="geometric", spread=30, seed=s)``), m = 12,
target relative error 1e-3. Each seed runs alone (no batching) so the
seconds are per run.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import overtensor as ot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--gd-steps", type=int, default=50_000)
    args = parser.parse_args()
    runs = {
        "beyond_lazy": ("beyond_lazy", {}),
        "beyond_lazy, recycle off": ("beyond_lazy", {"recycle": False}),
        "gd": ("gd", {"max_steps": args.gd_steps}),
    }
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, "
          f"python {platform.python_version()}\n")
    print("| method | seed | relative error | steps | seconds | missing directions after recover |")
    print("|---|---|---|---|---|---|")
    totals = {}
    for name, (method, options) in runs.items():
        ok, steps, secs = 0, [], []
        for s in range(args.seeds):
            target = ot.make_target(100, 10, 3, weights="geometric", spread=30, seed=s)
            t0 = time.perf_counter()
            res = ot.decompose(target, 12, method, seed=s, tol=1e-3, **options)
            seconds = time.perf_counter() - t0
            missing = len(ot.match(ot.recover(res.model), target).missing)
            print(f"| {name} | {s} | {res.relative_error:.2e} | {res.steps} | {seconds:.2f} | {missing} |")
            ok += res.converged
            steps.append(res.steps)
            secs.append(seconds)
        totals[name] = (ok, np.median(steps), np.sum(secs))
    print("\n| method | converged | median steps | total seconds |")
    print("|---|---|---|---|")
    for name, (ok, med, sec) in totals.items():
        print(f"| {name} | {ok}/{args.seeds} | {med:.0f} | {sec:.1f} |")


if __name__ == "__main__":
    main()
