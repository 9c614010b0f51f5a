"""Time per gradient step against the step's two dominant matrix products.

Usage: python benchmarks/bench_step.py [--repeats 7] [--dtype float64]

Times ``overtensor.decompose(target, m, method="gd", max_steps=N, tol=0.0)``
(the whole loop with its default history interval) divided by N, on a factored
order-3 target of rank 10 (and, last, a dense ``50^3`` target with m = 100,
whose step is dominated by the ``O(m d^l)`` contraction), and in the same process the two products that bound
a step from below: ``W̄ W̄ᵀ`` and an ``(m × m)·(m × d)`` product, N times. The
two are timed in alternation over windows of about equal length, and each
reported time is the best of ``--repeats``, so that a shared, noisy machine
inflates neither side alone.
"""

from __future__ import annotations

import argparse

import numpy as np

import overtensor as ot
from _timing import best_of
from overtensor._array import get_backend

SIZES = [(100, 50, 200), (500, 100, 50), (2000, 200, 10)]  # (m, d, steps per timing)



def step_vs_matmuls(m: int, d: int, steps: int, repeats: int, dtype: str, backend: str = "numpy",
                    device: str | None = None, dense: bool = False) -> tuple[float, float]:
    """``(seconds per step, seconds of the two products)``, best of ``repeats`` each."""
    target = ot.make_target(d, 10, 3, kind="gaussian", seed=0)
    if dense:
        target = ot.DenseSymTensor(target.to_dense())
    on = get_backend(backend, device, dtype)
    rng = np.random.default_rng(0)
    Wbar = on.asarray(rng.standard_normal((1, m, d)))
    G = on.asarray(rng.standard_normal((1, m, m)))
    sync = _sync(backend, device)

    def run() -> None:
        ot.decompose(target, m, seed=0, max_steps=steps, tol=0.0, backend=backend, device=device, dtype=dtype)

    def products() -> None:
        for _ in range(steps):
            Wbar @ Wbar.mT
            G @ Wbar
        sync()

    run()  # warm-up: imports, first allocations, GPU kernels
    step, mm = np.inf, np.inf
    for _ in range(repeats):  # windows of equal length, alternating
        step = min(step, best_of(run, 1) / steps)
        mm = min(mm, best_of(products, 1) / steps)
    return step, mm


def _sync(backend: str, device: str | None):
    if backend == "torch" and device and device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    print(f"# {args.backend} {args.device or ''} {args.dtype}, numpy {np.__version__}")
    print("| target | m | d | ms / step | ms, W̄W̄ᵀ + (m×m)(m×d) | ratio |")
    print("|---|---|---|---|---|---|")
    for m, d, steps, dense in [(*size, False) for size in SIZES] + [(100, 50, 100, True)]:
        step, mm = step_vs_matmuls(m, d, steps, args.repeats, args.dtype, args.backend, args.device, dense)
        kind = "dense" if dense else "factored"
        print(f"| {kind} | {m} | {d} | {1e3 * step:.3f} | {1e3 * mm:.3f} | {step / mm:.2f} |", flush=True)


if __name__ == "__main__":
    main()
