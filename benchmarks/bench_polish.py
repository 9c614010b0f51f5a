"""Choosing the polish: Levenberg–Marquardt (ours) against L-BFGS, and Cholesky against CG for its steps.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/bench_polish.py

Starts: gd at ``m = 4r`` to 1e-3 on the compressed target (``ot.compress``), then ``ot.recover``;
targets ``make_target(d, r, 3, kind, weights="geometric", spread)`` densified, seeds 0-2.
From the same start:

- ``lm``: ``ot.polish`` (defaults: tol 1e-12);
- ``lbfgs``: ``scipy.optimize.minimize(method="L-BFGS-B")`` on ``½‖T(W) - T*‖²`` with the exact
  gradient (``Jacobian.gradient``) and the loss from the dense residual (no difference of
  squares), ``gtol=0, ftol=0``, at most 2000 iterations.

Then, for the linear solve inside one LM step, ``(JᵀJ + μ I) h = -g`` at ``m`` components in
dimension ``d``: SciPy CG with the block preconditioner against forming ``JᵀJ`` and a Cholesky
solve. CPU time (``time.process_time``), one BLAS thread.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import minimize

import overtensor as ot
from overtensor.solvers import newton
from overtensor.tensors.residual import dense_array, signed_factors


def _lbfgs(start: ot.SymCP, target: ot.DenseSymTensor) -> tuple[float, float, int]:
    sigma, W0 = signed_factors(start.normalize())
    l = target.order

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        W = x.reshape(W0.shape)
        R = dense_array(ot.SymCP(sigma, W, l)) - target.array
        return 0.5 * float(np.sum(R * R)), newton.Jacobian.at(W, sigma, l).gradient(target).ravel()

    t0 = time.process_time()
    res = minimize(fun, W0.ravel(), jac=True, method="L-BFGS-B",
                   options={"maxiter": 2000, "gtol": 0.0, "ftol": 0.0, "maxcor": 20})
    seconds = time.process_time() - t0
    return seconds, float(np.sqrt(2 * res.fun)) / target.norm(), int(res.nit)


def compare_methods() -> None:
    print("| target | d | r | seed | start error | LM: s, iterations, error | L-BFGS: s, iterations, error |")
    print("|---|---|---|---|---|---|---|")
    for kind, spread, d, r in (("gaussian", 10, 60, 10), ("gaussian", 100, 60, 10), ("orthonormal", 10, 60, 10)):
        for seed in range(3):
            truth = ot.make_target(d, r, 3, kind=kind, weights="geometric", spread=spread, seed=seed)
            comp = ot.compress(ot.DenseSymTensor(truth.to_dense()))
            start = ot.recover(ot.decompose(comp.tensor, 4 * r, seed=seed, tol=1e-3, max_steps=50_000).model)
            t0 = time.process_time()
            lm = ot.polish(start, comp.tensor)
            lm_s = time.process_time() - t0
            lb_s, lb_err, lb_it = _lbfgs(start, comp.tensor)
            print(f"| {kind} {spread} | {d} | {r} | {seed} | {lm.history.relative_error[0]:.1e} | "
                  f"{lm_s:.3f}, {lm.steps}, {lm.relative_error:.1e} | {lb_s:.3f}, {lb_it}, {lb_err:.1e} |", flush=True)


def compare_solves(repeats: int = 5) -> None:
    print("\n| m | d | m d | CG: ms, iterations | Cholesky: ms |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for m, d in ((5, 10), (10, 10), (20, 10), (10, 40), (20, 30), (10, 120), (40, 30)):
        W = rng.standard_normal((m, d)) / np.sqrt(d)
        jac = newton.Jacobian.at(W, np.ones(m), 3)
        g = rng.standard_normal((m, d))
        mu = 1e-6
        timings = {}
        for name, limit in (("cg", 0), ("direct", 10**9)):
            newton.DIRECT_UNKNOWNS = limit
            best = np.inf
            for _ in range(repeats):
                t0 = time.process_time()
                _, its = newton._lm_direction(jac, g, mu, 1e-10)
                best = min(best, time.process_time() - t0)
            timings[name] = (1e3 * best, its)
        print(f"| {m} | {d} | {m * d} | {timings['cg'][0]:.2f}, {timings['cg'][1]} | {timings['direct'][0]:.2f} |",
              flush=True)


if __name__ == "__main__":
    compare_methods()
    compare_solves()
