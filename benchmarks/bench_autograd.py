"""Our factored step against a dense-tensor autograd step of the same objective.

Usage: python benchmarks/bench_autograd.py [--repeats 3]   (needs torch)

The dense version is what one writes by hand: build the ``d^3`` model tensor
``Σ_i ‖w_i‖² w̄_i^{⊗3}`` with ``torch.einsum``, take ``½‖T(W) - T*‖²`` against a
dense ``T*`` and let autograd differentiate it; one step is forward, backward
and the update. Ours is ``overtensor.decompose(..., max_steps=N, tol=0)`` per
step (history included), on NumPy and on torch. Order 3, m = 100, a factored
gaussian target of rank 10, float64, CPU. Each side is the best of ``--repeats`` calls in CPU
time of this process (``time.process_time``); run with one thread (``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _timing import cpu_best

import overtensor as ot


def dense_autograd_steps(W0: np.ndarray, dense_target: np.ndarray, step_size: float, steps: int) -> float:
    """Plain GD by autograd on the dense model tensor; returns the relative error before the last step."""
    T_star = torch.as_tensor(dense_target)
    W = torch.tensor(W0, requires_grad=True)
    for _ in range(steps):
        norms = W.norm(dim=1)
        Wbar = W / norms[:, None]
        T = torch.einsum("i,ia,ib,ic->abc", norms**2, Wbar, Wbar, Wbar)
        loss = 0.5 * ((T - T_star) ** 2).sum()
        loss.backward()
        with torch.no_grad():
            W -= step_size * W.grad
            W.grad = None
    return float(torch.sqrt(2 * loss.detach()) / torch.linalg.vector_norm(T_star))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    m, steps = 100, 50
    print(f"# m = {m}, order 3, float64, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| d | dense autograd, ms/step | ours numpy, ms/step | ours torch, ms/step | speedup (numpy) |")
    print("|---|---|---|---|---|")
    for d in (30, 60, 100):
        target = ot.make_target(d, 10, 3, kind="gaussian", seed=0)
        dense = target.to_dense()
        ref = ot.decompose(target, m, seed=0, max_steps=steps - 1, tol=0.0)
        eta, W0 = ref.info["step_size"], ot.decompose(target, m, seed=0, max_steps=0, tol=0.0).params
        # same trajectory: the dense autograd run sees the same error at the same step
        err = dense_autograd_steps(W0, dense, eta, steps)
        assert abs(err - ref.relative_error) <= 1e-6 * max(1.0, ref.relative_error), (err, ref.relative_error)
        auto = cpu_best(lambda: dense_autograd_steps(W0, dense, eta, steps), args.repeats) / steps
        ours = cpu_best(lambda: ot.decompose(target, m, seed=0, max_steps=steps, tol=0.0), args.repeats) / steps
        ours_t = cpu_best(lambda: ot.decompose(target, m, seed=0, max_steps=steps, tol=0.0, backend="torch"),
                       args.repeats) / steps
        print(f"| {d} | {1e3 * auto:.2f} | {1e3 * ours:.3f} | {1e3 * ours_t:.3f} | {auto / ours:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
