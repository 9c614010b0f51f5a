"""Implicit moment targets at scale: step time, peak memory, the two ‖T‖² routes, Dask vs in-memory.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_moments.py [--max-n 1e7] [--out docs/moments.md]

For each ``(n, d)`` (``m = 20``, order 3) it reports

- ``step``: CPU seconds of one gradient evaluation (one pass: ``P = X_c W̄ᵀ``,
  ``(P^{∘2})ᵀ X_c`` per chunk, plus the ``(m, d)`` work of the objective), best of 3;
- ``blas``: CPU seconds of just the two products per chunk on ready arrays, best of 3:
  the bound a pass cannot beat; ``step / blas`` is the overhead;
- ``step_peak_mb``, ``build_peak_mb``: peak of the arrays allocated during a step and
  during the checking pass of ``moment_tensor`` (tracemalloc, which NumPy reports to),
  above the samples themselves;
- the largest ``n`` is read from a memory-mapped ``.npy`` in /tmp (written chunk by chunk).

Then the exact ``‖T‖²`` by each route under a flop cap, a contraction on a ``dask.array``
over a loopback ``LocalCluster`` (2 in-process workers) against in-memory, and a whole
``decompose`` at ``n = 1e6, d = 100`` with its peak memory (tracemalloc, and the growth of
the process's maximum RSS after the samples exist).
CPU time, not wall time: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable

import numpy as np
from _timing import cpu_best

import overtensor as ot
from overtensor.solvers.objective import evaluate
from overtensor.tensors.moment import DEFAULT_CHUNK, MomentOp

M, ORDER = 20, 3



def peak_mb(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def samples(n: int, d: int, path: str | None) -> np.ndarray:
    """Standard normal samples, in memory or written to a ``.npy`` chunk by chunk and memory-mapped."""
    rng = np.random.default_rng(0)
    if path is None:
        return rng.standard_normal((n, d))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, d))
    for start in range(0, n, 1_000_000):
        stop = min(n, start + 1_000_000)
        out[start:stop] = rng.standard_normal((stop - start, d))
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def blas_bound(X: np.ndarray, W: np.ndarray) -> float:
    """CPU seconds of ``P = X_c Wᵀ`` and ``Pᵀ X_c`` over the chunks, on float64 chunks already in memory."""
    chunk = np.ascontiguousarray(X[:DEFAULT_CHUNK], dtype=np.float64)
    P = chunk @ W.T
    full, rest = divmod(X.shape[0], DEFAULT_CHUNK)

    def run() -> None:
        for _ in range(full):
            np.matmul(chunk, W.T, out=P)
            P.T @ chunk
        if rest:
            chunk[:rest] @ W.T

    return cpu_best(run, 3)


def step_row(n: int, d: int, path: str | None) -> dict[str, object]:
    X = samples(n, d, path)
    tracemalloc.start()
    t0 = time.process_time()
    T = ot.moment_tensor(X, ORDER)  # the checking pass, with E[x] and E[x xᵀ]
    build = time.process_time() - t0
    build_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    op = MomentOp(T.samples, np.ones(1), ORDER)  # a step needs no ‖T‖² (a constant of the loss)
    W = np.random.default_rng(1).standard_normal((1, M, d))
    step = cpu_best(lambda: evaluate(W, op, 0.0, "balanced", np.ones(1)), 3)
    peak = peak_mb(lambda: evaluate(W, op, 0.0, "balanced", np.ones(1)))
    bound = blas_bound(X, W[0] / np.linalg.norm(W[0], axis=1, keepdims=True))
    return {"n": n, "d": d, "source": "memmap" if path else "memory", "build_s": build, "step_s": step,
            "blas_s": bound, "ratio": step / bound, "step_peak_mb": peak, "build_peak_mb": build_peak,
            "data_mb": n * d * 8 / 2**20}


def norm_rows(max_flops: float) -> list[dict[str, object]]:
    rows = []
    for d in (10, 100):
        for n in (10**4, 10**5, 10**6):
            T = ot.moment_tensor(np.random.default_rng(2).standard_normal((n, d)), ORDER)
            costs = T.route_costs()
            row: dict[str, object] = {"n": n, "d": d, "chosen": min(costs, key=costs.__getitem__)}
            for route, flops in costs.items():
                row[f"{route}_gflop_eq"] = flops / 1e9
                row[f"{route}_s"] = cpu_best(lambda: T.norm_sq(route), 1) if flops <= max_flops else None
            rows.append(row)
    return rows


def dask_rows(n: int, d: int) -> list[dict[str, object]]:
    import dask.array as da
    from distributed import Client, LocalCluster

    warnings.filterwarnings("ignore", message="Sending large graph")  # from_array ships the data once
    X = np.random.default_rng(3).standard_normal((n, d))
    W = np.random.default_rng(4).standard_normal((1, M, d))
    ref = MomentOp(ot.moment_tensor(X, ORDER).samples, np.ones(1), ORDER)  # no ‖T‖²: contractions only
    mem = min((_wall(lambda: ref.contract(W)) for _ in range(3)), key=lambda t: t[0])
    # every HTTP server on loopback: with dashboard_address=None they bind all interfaces
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0",
                      worker_dashboard_address="127.0.0.1:0") as cluster, Client(cluster):
        Xd = da.from_array(X, chunks=(max(n // 8, 1), d)).persist()
        op = MomentOp(ot.moment_tensor(Xd, ORDER).samples, np.ones(1), ORDER)
        dist = min((_wall(lambda: op.contract(W)) for _ in range(3)), key=lambda t: t[0])
        expect = ref.contract(W)
        err = float(np.max(np.abs(op.contract(W) - expect)) / np.max(np.abs(expect)))
    return [{"n": n, "d": d, "memory_wall_s": mem[0], "dask_wall_s": dist[0], "wall_ratio": dist[0] / mem[0],
             "memory_cpu_s": mem[1], "dask_cpu_s": dist[1], "rel_diff": err}]


def _wall(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and process CPU seconds of one call (in-process workers' threads count in the CPU time)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def decompose_row(n: int, d: int, steps: int) -> list[dict[str, object]]:
    """A whole ``decompose(..., "gd")``: build, ‖T‖², the step-size estimate and ``steps`` steps; peak memory."""
    import resource

    X = np.random.default_rng(5).standard_normal((n, d))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KB -> MB, after the data exist
    tracemalloc.start()
    t0 = time.process_time()
    T = ot.moment_tensor(X, ORDER)
    result = ot.decompose(T, M, "gd", max_steps=steps, tol=0)
    cpu = time.process_time() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    return [{"n": n, "d": d, "steps": result.steps, "norm_route": T.norm_route, "cpu_s": cpu,
             "traced_peak_mb": peak, "max_rss_growth_mb": rss - base_rss, "data_mb": n * d * 8 / 2**20}]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


def table(rows: list[dict[str, object]]) -> str:
    keys = list(rows[0])
    fmt = lambda v: "—" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-n", type=float, default=1e6, help="largest n (read from a memmapped .npy)")
    parser.add_argument("--max-norm-gflop", type=float, default=300.0, help="skip ‖T‖² routes costing more")
    parser.add_argument("--dask-n", type=int, nargs="+", default=[10**5, 10**6])
    parser.add_argument("--parts", nargs="+", choices=["steps", "norms", "dask", "decompose"],
                        default=["steps", "norms", "dask", "decompose"])
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}\n", flush=True)
    if "steps" in args.parts:
        print("Step (m = 20, order 3), CPU seconds\n")
        print(table(step_rows(int(args.max_n))), flush=True)
    if "norms" in args.parts:
        print("\n‖T‖² by each route, CPU seconds (— : over the flop cap, not run)\n")
        print(table(norm_rows(args.max_norm_gflop * 1e9)), flush=True)
    if "dask" in args.parts:
        print("\nOne contraction (m = 20, order 3): Dask LocalCluster (2 in-process workers) vs in-memory\n")
        print(table([row for n in args.dask_n for row in dask_rows(n, 100)]), flush=True)
    if "decompose" in args.parts:
        print("\nA whole gd run (build, ‖T‖², step-size estimate, 20 steps), CPU seconds and peak memory\n")
        print(table(decompose_row(10**6, 100, 20)), flush=True)


def step_rows(max_n: int) -> list[dict[str, object]]:
    """Rows of :func:`step_row` for ``n = 1e4 … max_n``, ``d = 10, 100``; the largest ``n`` memory-mapped."""
    steps = []
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        for d in (10, 100):
            for n in [n for n in (10**4, 10**5, 10**6, 10**7) if n <= max_n]:
                path = os.path.join(tmp, f"x{n}_{d}.npy") if n == max_n else None
                steps.append(step_row(n, d, path))
                if path:
                    os.remove(path)
    return steps


if __name__ == "__main__":
    main()
