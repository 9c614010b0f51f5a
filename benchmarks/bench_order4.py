"""The case no dense code can hold: order 4, d = 5000 (6 x 10^14 entries).

Usage: python benchmarks/bench_order4.py [--quick]

Target: 20 gaussian unit components with equal weights (seed 0), ``m = 200``
(seed 1: a run seeded like its gaussian target would start on the target's own
directions), gd to relative error 1e-3. Rows: the default step size
``0.4 / ‖T*‖``, the step ``0.4 / max_j c_j`` (here 0.4), and the same in float32.
``--quick`` runs the last row only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import overtensor as ot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    target = ot.make_target(5000, 20, 4, kind="gaussian", seed=0)
    print(f"# order 4, d = 5000, r = 20, m = 200, ||T*|| = {target.norm():.3f}, backend {args.backend}")
    print("| step size | dtype | steps | seconds | ms / step | relative error (float64) |")
    print("|---|---|---|---|---|---|")
    rows = [(None, "float64"), (0.4, "float64"), (0.4, "float32")]
    for step_size, dtype in rows[-1:] if args.quick else rows:
        t0 = time.perf_counter()
        res = ot.decompose(target, 200, seed=1, tol=1e-3, max_steps=5000, record_every=50, step_size=step_size,
                           dtype=dtype, backend=args.backend, device=args.device)
        seconds = time.perf_counter() - t0
        exact = res.model.distance(target) / target.norm()
        assert np.isclose(exact, res.relative_error, rtol=1e-6)
        label = f"{res.info['step_size']:.3g}" + (" (default)" if step_size is None else "")
        print(f"| {label} | {dtype} | {res.steps} | {seconds:.1f} | {1e3 * seconds / max(res.steps, 1):.1f} | "
              f"{exact:.2e} |", flush=True)


if __name__ == "__main__":
    main()
