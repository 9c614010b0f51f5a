"""Would a JAX backend earn its place? The balanced step compiled by JAX against overtensor on NumPy.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/bench_jax.py   (needs ``pip install jax``; not a dependency)

JAX side: the stacked balanced step of ``overtensor.solvers.step`` (order 3, unsigned, ``λ = 0``)
written as one pure function (``H = D⁻¹ W [W; A]ᵀ``, ``K = H ∘ H ∘ [n^{-1} | -c]``, ``W ← M [W; A]``)
in float64 on the CPU, single-threaded, timed three ways:

1. ``jit`` of a ``lax.fori_loop`` over all the steps: the whole loop compiled, no checks at all
   (the most a JAX backend could give; the library's loop checks the error every 10 steps);
2. ``jit`` of one step, called from Python at every step (a JAX array namespace in the
   library's loop would be at best this);
3. ``vmap`` of (1) over 64 runs, against a loop of 64 compiled runs.

NumPy side (same process, same shapes): ``overtensor.solvers.step.stepper``, the step the library's
loop calls, ``steps`` times. CPU time (``time.process_time``), best of 5 (3 for the slow rows).
The shapes: ``(20, 25)`` is ``gd``'s run at ``m = 20, d = 50, r = 5`` in the span of ``[W_0; A]``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np
from _timing import cpu_best

import overtensor as ot
from overtensor.backend import array_namespace
from overtensor.solvers.problem import make_problem
from overtensor.solvers.step import stepper

try:
    import jax
    import jax.numpy as jnp
except ImportError:
    sys.exit("bench_jax.py needs JAX: pip install jax")

jax.config.update("jax_enable_x64", True)
ETA = 1e-2


def jax_step(W: jax.Array, A: jax.Array, c: jax.Array) -> jax.Array:
    """One stacked balanced step, order 3, ``λ = 0``: ``W (m, d)``, ``A (r, d)``, ``c (r,)``."""
    m = W.shape[0]
    s = jnp.sum(W * W, axis=-1)
    n = jnp.sqrt(s)
    inv = 1.0 / jnp.where(n > 0, n, s + 1.0)
    S = jnp.concatenate([W, A], axis=0)
    H = (W @ S.T) * inv[:, None]
    K = H * H * jnp.concatenate([inv, -c])[None, :]
    Rv = jnp.sum(K * H, axis=-1)
    M = (K * (-3 * ETA * n)[:, None]).at[:, :m].add(jnp.diag(1.0 + ETA * Rv))
    return M @ S


def jax_run(W: jax.Array, A: jax.Array, c: jax.Array, steps: int) -> jax.Array:
    return jax.lax.fori_loop(0, steps, lambda _, X: jax_step(X, A, c), W)


def row(m: int, d: int, r: int, steps: int, repeats: int) -> str:
    target = ot.make_target(d, r, 3, seed=0)
    W0 = np.random.default_rng(0).standard_normal((m, d)) * 0.1
    A, c = target.vectors, target.weights
    run, one = jax.jit(jax_run, static_argnums=3), jax.jit(jax_step)
    run(W0, A, c, steps).block_until_ready()
    one(W0, A, c).block_until_ready()

    def from_python() -> None:
        W = W0
        for _ in range(steps):
            W = one(W, A, c)
        W.block_until_ready()

    op, W = make_problem([target], m, [0]).op, W0[None]
    ours = stepper(array_namespace(W), W, op, ETA, 0.0)

    def numpy_loop() -> None:
        X = W
        for _ in range(steps):
            X = ours(X).W

    compiled = cpu_best(lambda: run(W0, A, c, steps).block_until_ready(), repeats) / steps
    called = cpu_best(from_python, repeats) / steps
    numpy = cpu_best(numpy_loop, repeats) / steps
    return (f"| ({m}, {d}) | {1e6 * compiled:.1f} | {1e6 * called:.1f} | {1e6 * numpy:.1f} | "
            f"{numpy / compiled:.1f}x |")


def batch_row(batch: int = 64, steps: int = 500) -> str:
    target = ot.make_target(25, 5, 3, seed=0)
    W0 = np.random.default_rng(0).standard_normal((batch, 20, 25)) * 0.1
    A, c = target.vectors, target.weights
    run = jax.jit(jax_run, static_argnums=3)
    vrun = jax.jit(jax.vmap(jax_run, in_axes=(0, None, None, None)), static_argnums=3)
    vrun(W0, A, c, steps).block_until_ready()
    run(W0[0], A, c, steps).block_until_ready()
    batched = cpu_best(lambda: vrun(W0, A, c, steps).block_until_ready(), 5)
    loop = cpu_best(lambda: [run(W0[b], A, c, steps).block_until_ready() for b in range(batch)], 3)
    return (f"{batch} runs of {steps} steps at (20, 25): vmap {1e3 * batched:.1f} ms, a loop of compiled runs "
            f"{1e3 * loop:.1f} ms ({loop / batched:.2f}x)")


def main() -> None:
    print(f"# jax {jax.__version__}, numpy {np.__version__}, float64, CPU time, µs / step")
    print("| (m, d) | JAX, whole loop compiled | JAX, step called from Python | overtensor stepper (NumPy) | "
          "NumPy / compiled |")
    print("|---|---|---|---|---|")
    for m, d, r, steps, repeats in [(20, 25, 5, 2000, 5), (20, 50, 5, 2000, 5), (100, 50, 10, 1000, 5),
                                    (500, 100, 10, 50, 3)]:
        print(row(m, d, r, steps, repeats), flush=True)
    print()
    print(batch_row())


if __name__ == "__main__":
    main()
