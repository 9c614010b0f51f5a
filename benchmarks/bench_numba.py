"""Would a compiled step kernel earn its place? The stacked step with its element-wise passes fused by numba.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/bench_numba.py   (needs ``pip install numba``; not a dependency)

The stacked balanced step of ``overtensor.solvers.step`` (order 3, unsigned, ``λ = 0``) keeps its two
products in NumPy (OpenBLAS): ``F = W [W; A]ᵀ`` (the whole Gram ``S Sᵀ`` from 48 rows, as the
library does) and ``W ← M [W; A]``. Everything between them (``s = diag F``, ``n``, ``1/n``,
``K = (F/n_i)^{∘2} ∘ [n^{-1} | -c]``, ``R(w̄_i^{⊗3})``, the row factor ``-3η n_i`` and the diagonal
``1 + η R``) is one ``numba.njit`` kernel, one pass over ``(m, m + r)``, called from Python at
every step: how a compiled kernel would enter the library's loop (its checks, history and
hooks stay in Python). Timed against the step's two reference products (``W Wᵀ`` and an
``(m × m)·(m × d)`` product, as ``bench_step.py``) and the library's own step (``stepper``).

Then a batch of 64 runs (seeds 0..63) at ``(20, 25)``, an orthonormal rank-5 target (the size of
``gd``'s run at ``m = 20, d = 50, r = 5`` in the span of ``[W_0; A]``): the kernel over the batch
against a loop of 64 single runs of the kernel, and the library's batched step against its loop
of single steps, 500 steps each.

CPU time (``time.process_time``), best of 7 windows taken in alternation, single-threaded.
The kernel is compiled before timing (``cache=False``: nothing is written next to this file).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
from _timing import cpu_best_alternating

import overtensor as ot
from overtensor.backend import array_namespace
from overtensor.solvers import subspace
from overtensor.solvers.problem import make_problem
from overtensor.solvers.step import SYRK_ROWS, stepper

try:
    import numba
except ImportError:
    sys.exit("bench_numba.py needs numba: pip install numba")


@numba.njit(cache=False)
def fused(F: np.ndarray, m: int, neg_c: np.ndarray, eta: float, K: np.ndarray) -> None:
    """``F (B, ≥m, m + r) -> K (B, m, m + r)``, the matrix ``M`` of the stacked step, in one pass."""
    B, cols = K.shape[0], K.shape[2]
    inv, n = np.empty(m), np.empty(m)
    for b in range(B):
        for i in range(m):
            s = F[b, i, i]
            n[i] = np.sqrt(s)
            inv[i] = 1.0 / (n[i] + (1.0 if s == 0 else 0.0))
        for i in range(m):
            R = 0.0
            for k in range(cols):
                h = F[b, i, k] * inv[i]
                w = inv[k] if k < m else neg_c[b, k - m]
                K[b, i, k] = w * h * h
                R += K[b, i, k] * h
            row = -3.0 * eta * n[i]
            for k in range(cols):
                K[b, i, k] *= row
            K[b, i, i] += 1.0 + eta * R


def numba_stepper(W: np.ndarray, A: np.ndarray, c: np.ndarray, eta: float) -> Callable[[np.ndarray], np.ndarray]:
    """The step at ``W (B, m, d)``, ``A (B, r, d)``, ``c (B, r)``, with its buffers made once."""
    B, m, _ = W.shape
    S = np.concatenate([W, A], axis=-2)
    ST, top = np.swapaxes(S, -1, -2), S[:, :m]
    syrk = m >= SYRK_ROWS
    F = np.empty((B, S.shape[1] if syrk else m, S.shape[1]))
    K = np.empty((B, m, S.shape[1]))
    neg_c = -np.ascontiguousarray(c)

    def step(W: np.ndarray) -> np.ndarray:
        np.copyto(top, W)
        np.matmul(S if syrk else top, ST, out=F)
        fused(F, m, neg_c, eta, K)
        return np.matmul(K, S)

    return step


def single_row(m: int, d: int, steps: int) -> str:
    target = ot.make_target(d, 10, 3, kind="gaussian", seed=0)
    subspace.SPAN_FRACTION = 0.0  # the step on d coordinates, as bench_step.py
    start = ot.decompose(target, m, seed=0, max_steps=0, tol=0.0)
    problem = make_problem([target], m, [0])
    W0, eta = start.params[None], start.info["step_size"]
    ours = stepper(array_namespace(W0), W0, problem.op, eta, 0.0)
    compiled = numba_stepper(W0, problem.op.vectors, problem.op.weights, eta)
    gap = np.max(np.abs(compiled(W0) - ours(W0).W)) / np.max(np.abs(W0))
    rng = np.random.default_rng(0)
    X, G = rng.standard_normal((1, m, d)), rng.standard_normal((1, m, m))

    def loop(step: Callable[[np.ndarray], np.ndarray]) -> Callable[[], None]:
        def run() -> None:
            W = W0
            for _ in range(steps):
                W = step(W)
        return run

    def products() -> None:
        for _ in range(steps):
            X @ np.swapaxes(X, -1, -2)
            G @ X

    runs = {"numba": loop(compiled), "ours": loop(lambda W: ours(W, values=False).W), "products": products}
    t = cpu_best_alternating(runs, 7)
    us = {k: 1e6 * v / steps for k, v in t.items()}
    return (f"| ({m}, {d}) | {us['numba']:.1f} | {us['numba'] / us['products']:.2f} | {us['ours']:.1f} | "
            f"{us['ours'] / us['products']:.2f} | {us['products']:.1f} | {gap:.0e} |")


def batch_row(runs: int = 64, m: int = 20, d: int = 25, r: int = 5, steps: int = 500) -> str:
    target = ot.make_target(d, r, 3, seed=1000)
    subspace.SPAN_FRACTION = 0.0
    starts = [ot.decompose(target, m, seed=s, max_steps=0, tol=0.0) for s in range(runs)]
    W0, eta = np.stack([s.params for s in starts]), starts[0].info["step_size"]  # the step size is the target's
    A, c = np.broadcast_to(target.vectors, (runs, r, d)), np.broadcast_to(target.weights, (runs, r))
    ops = [make_problem([target], m, [s]).op for s in range(runs)]
    batch_op = make_problem([target] * runs, m, list(range(runs))).op

    def loop(make: Callable[[int], Callable[[np.ndarray], np.ndarray]], batched: bool) -> Callable[[], None]:
        def run() -> None:
            for b in ([None] if batched else range(runs)):
                W = W0 if b is None else W0[b:b + 1]
                step = make(-1 if b is None else b)
                for _ in range(steps):
                    W = step(W)
        return run

    def numba_make(b: int) -> Callable[[np.ndarray], np.ndarray]:
        sl = slice(None) if b < 0 else slice(b, b + 1)
        return numba_stepper(W0[sl], A[sl], c[sl], eta)

    def ours_make(b: int) -> Callable[[np.ndarray], np.ndarray]:
        op, W = (batch_op, W0) if b < 0 else (ops[b], W0[b:b + 1])
        step = stepper(array_namespace(W), W, op, eta, 0.0)
        return lambda W: step(W, values=False).W

    t = cpu_best_alternating({"numba loop": loop(numba_make, False), "numba batch": loop(numba_make, True),
              "ours loop": loop(ours_make, False), "ours batch": loop(ours_make, True)}, 5)
    ms = {k: 1e3 * v for k, v in t.items()}
    return (f"| {ms['numba loop']:.0f} | {ms['numba batch']:.0f} | {t['numba loop'] / t['numba batch']:.1f}x | "
            f"{ms['ours loop']:.0f} | {ms['ours batch']:.0f} | {t['ours loop'] / t['ours batch']:.1f}x |")


def main() -> None:
    print(f"# numba {numba.__version__}, numpy {np.__version__}, CPU time, float64, µs per step")
    print("| (m, d) | numba kernel | / products | overtensor (NumPy) | / products | W Wᵀ + (m×m)(m×d) | max diff |")
    print("|---|---|---|---|---|---|---|")
    for m, d, steps in [(20, 25, 4000), (20, 50, 4000), (100, 50, 1000), (500, 100, 100), (200, 5000, 20)]:
        print(single_row(m, d, steps), flush=True)
    print("\n# 64 runs at (20, 25), 500 steps each, ms")
    print("| numba, loop of singles | numba, batch | speedup | overtensor, loop | overtensor, batch | speedup |")
    print("|---|---|---|---|---|---|")
    print(batch_row(), flush=True)


if __name__ == "__main__":
    main()
