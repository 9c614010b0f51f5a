"""Time per gradient step of the factored objective (issue: core).

Usage: python benchmarks/bench_step.py [--repeats 5]

Times ``overtensor.decompose(..., method="gd", max_steps=N, tol=0)`` (the whole
loop, history included) and divides by N, for factored order-3 targets of rank
10 and for a dense order-3 target with d = 50.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import overtensor as ot


def per_step(target, m: int, steps: int, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        ot.decompose(target, m, seed=0, max_steps=steps, tol=0.0)
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, python {platform.python_version()}")
    print("| target | m | d | ms / step |")
    print("|---|---|---|---|")
    for m, d, steps in [(100, 50, 400), (500, 100, 100), (2000, 200, 20)]:
        t = ot.make_target(d, 10, 3, kind="gaussian", seed=0)
        print(f"| factored, r = 10 | {m} | {d} | {1e3 * per_step(t, m, steps, args.repeats):.3f} |")
    dense = ot.DenseSymTensor(ot.make_target(50, 10, 3, kind="gaussian", seed=0).to_dense())
    print(f"| dense | 100 | 50 | {1e3 * per_step(dense, 100, 100, args.repeats):.3f} |")


if __name__ == "__main__":
    main()
