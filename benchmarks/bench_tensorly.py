"""Time to relative error 1e-3 on dense targets: overtensor gd against TensorLy.

Usage: python benchmarks/bench_tensorly.py [--seeds 3]

Targets: dense order-3 arrays of a random rank-5 symmetric tensor (gaussian
unit components, equal weights, seeds 100, 101, ...; the runs use seeds 0, 1,
...), d = 20, 40, 80, 120. Contenders, each timed until
its relative error ``‖T - T*‖/‖T*‖`` is at most 1e-3 (checked against the dense
array independently of each method's own estimate):

- ``overtensor.decompose(DenseSymTensor(T*), m=20, tol=1e-3)`` (gd, defaults);
- ``tensorly.decomposition.parafac(T*, rank=5)`` (CP-ALS, SVD init), stopped
  by its callback once its error reaches 1e-3;
- ``tensorly.decomposition.symmetric_parafac_power_iteration(T*, rank=5)``
  (power iteration with deflation; no tolerance: one call, defaults).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorly as tl
from tensorly.decomposition import parafac, symmetric_parafac_power_iteration

import overtensor as ot

GOAL = 1e-3


def _error(T: np.ndarray, approx: np.ndarray) -> float:
    return float(np.linalg.norm(T - approx) / np.linalg.norm(T))


def ours(T: np.ndarray, seed: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    res = ot.decompose(ot.DenseSymTensor(T), 20, seed=seed, tol=GOAL, max_steps=20_000)
    return time.perf_counter() - t0, _error(T, res.model.to_dense())


def als(T: np.ndarray, rank: int, seed: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    cp, _ = parafac(T, rank, n_iter_max=5000, tol=0, random_state=seed, return_errors=True,
                    callback=lambda _cp, err: bool(err <= GOAL))
    return time.perf_counter() - t0, _error(T, tl.cp_to_tensor(cp))


def power(T: np.ndarray, rank: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    weights, factor = symmetric_parafac_power_iteration(T, rank)
    return time.perf_counter() - t0, _error(T, tl.cp_to_tensor((weights, [factor] * T.ndim)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    rank = 5
    print(f"# median over {args.seeds} targets/seeds; seconds (relative error reached); tensorly {tl.__version__}")
    print("| d | overtensor gd, m = 20 | TensorLy parafac (ALS) | TensorLy symmetric power iteration |")
    print("|---|---|---|---|")
    for d in (20, 40, 80, 120):
        rows = []
        for seed in range(args.seeds):
            T = ot.make_target(d, rank, 3, kind="gaussian", seed=100 + seed).to_dense()
            rows.append([ours(T, seed), als(T, rank, seed), power(T, rank)])
        cells = []
        for j in range(3):
            secs = np.median([r[j][0] for r in rows])
            errs = [r[j][1] for r in rows]
            hit = sum(e <= GOAL * (1 + 1e-6) for e in errs)
            cells.append(f"{secs:.3f} s ({hit}/{len(errs)} <= 1e-3, worst {max(errs):.1e})")
        print(f"| {d} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
