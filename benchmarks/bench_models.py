"""SphericalGMM and MomentICA against scikit-learn's EM (GaussianMixture, spherical) and FastICA.

Planted spherical mixtures (means sharing an offset, so not orthogonal; weights
uniform in [1, 3], normalized; σ² = 1) and ICA mixtures (half uniform, half
Laplace sources, a Gaussian random mixing matrix). Reports the matched mean error
``max_j ‖μ̂_j - μ_j‖ / ‖μ_j‖``, the weight error ``max_j |ŵ_j - w_j|``, whether the
number of components was found, the Amari distance, wall and CPU seconds, and the
peak of memory allocated during the fit (``tracemalloc``: NumPy's buffers included,
the data themselves not). Peers: EM with ``k`` given, EM with ``k`` chosen by BIC,
and the tensor power method with deflation (TensorLy's
``symmetric_parafac_power_iteration`` and overtensor's ``power``) on the same
whitened third moment as ours, ``k`` given.

Run from the repository root, one BLAS thread (the machine is shared)::

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_models.py --n 1e4 1e5 --dims 10 100

``--memmap FILE --n 1e7 --method moments`` fits one method to a float32 ``.npy``
written (in chunks, if missing) at ``FILE`` and memory-mapped, in a fresh process per
method so that its peak resident set (``ru_maxrss``) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from tensorly.decomposition import symmetric_parafac_power_iteration

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_models import matched_errors, planted_gmm

import overtensor as ot
from overtensor.models import MomentICA, SphericalGMM, amari_distance


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def traced(fn: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """``fn()``, its wall and CPU seconds and the peak MB that it allocated (tracemalloc)."""
    tracemalloc.start()
    try:
        out, wall, cpu = timed(fn)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return out, wall, cpu, peak


def gmm_row(name: str, means: np.ndarray, weights: np.ndarray, mu: np.ndarray, w: np.ndarray,
            wall: float, cpu: float, peak: float = float("nan")) -> dict[str, Any]:
    found = means.shape[0] == mu.shape[0]
    mean_err, weight_err = matched_errors(means, weights, mu, w) if found else (float("nan"), float("nan"))
    return {"method": name, "k_found": int(means.shape[0]), "mean_err": mean_err, "weight_err": weight_err,
            "wall": wall, "cpu": cpu, "peak_MB": peak}


def whitened_moment(X: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The classical pipeline's input: the dense whitened ``M3`` ``(k,)*3`` and the un-whitening ``(d, k)``.

    The same moment SphericalGMM decomposes (``σ²`` the mean of the ``d - k`` smallest
    covariance eigenvalues, ``M2 = E[x xᵀ] - σ² I`` whitened to its top ``k``), from
    overtensor's public pieces, so the peers differ only in the decomposition.
    """
    T = ot.moment_tensor(X, 3)
    m1, S = T.mean, T.second_moment
    d = T.dim
    sigma2 = float(np.mean(np.linalg.eigvalsh(S - np.outer(m1, m1))[: d - k]))
    ev, U = np.linalg.eigh(S - sigma2 * np.eye(d))
    lam, U = ev[::-1][:k], U[:, ::-1][:, :k]
    small = ot.transform(T - sigma2 * ot.CorrectionS(m1), U / np.sqrt(lam)).to_dense()
    return small, U * np.sqrt(lam)


def unwhiten(lam: np.ndarray, V: np.ndarray, back: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components ``λ_j v_j^{⊗3}`` of the whitened ``M3`` to means ``λ_j back v_j`` and weights ``λ_j^{-2}``."""
    V = np.sign(lam)[:, None] * V  # odd order: a negative λ is a flipped vector
    lam = np.abs(lam)
    weights = lam**-2.0
    return (lam[:, None] * V) @ back.T, weights / weights.sum()


def power_tensorly(X: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    small, back = whitened_moment(X, k)
    lam, factor = symmetric_parafac_power_iteration(small, k)
    return unwhiten(np.asarray(lam), np.asarray(factor).T, back)


def power_ours(X: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    small, back = whitened_moment(X, k)
    model = ot.decompose(ot.DenseSymTensor(small, rtol=1e-6), k, "power", seed=0).model
    return unwhiten(model.weights, model.vectors, back)


def em(X: np.ndarray, k: int, **init: Any) -> GaussianMixture:
    return GaussianMixture(k, covariance_type="spherical", random_state=0, **init).fit(X)


def em_bic(X: np.ndarray, top: int) -> GaussianMixture:
    fits = [em(X, j) for j in range(1, top + 1)]
    return min(fits, key=lambda g: g.bic(X))


def bench_gmm(n: int, d: int, k: int, seed: int, bic: bool, power: bool = True) -> list[dict[str, Any]]:
    X, mu, w = planted_gmm(n, seed, d=d, k=k)
    rows = []
    ours, *cost = traced(lambda: SphericalGMM(seed=0).fit(X))
    rows.append(gmm_row("moments (auto k)", ours.means_, ours.weights_, mu, w, *cost))
    given, *cost = traced(lambda: SphericalGMM(k, seed=0).fit(X))
    rows.append(gmm_row("moments (k given)", given.means_, given.weights_, mu, w, *cost))
    if given.n_components_ == k:
        g2, *cost2 = traced(lambda: em_steps(X, given, 2))
        rows.append(gmm_row("moments + 2 EM steps (sklearn)", g2.means_, g2.weights_, mu, w, cost[0] + cost2[0],
                            cost[1] + cost2[1], max(cost[2], cost2[2])))
    ours2, *cost = traced(lambda: SphericalGMM(k, seed=0, em_steps=2).fit(X))
    rows.append(gmm_row("moments + 2 EM steps (em_steps=2)", ours2.means_, ours2.weights_, mu, w, *cost))
    peers = (("power method (TensorLy)", power_tensorly), ("power method (overtensor)", power_ours)) if power else ()
    for name, peer in peers:
        (means, weights), *cost = traced(lambda: peer(X, k))
        rows.append(gmm_row(name, *_heaviest(means, weights), mu, w, *cost))
    g, *cost = traced(lambda: em(X, k))
    rows.append(gmm_row("EM (k given)", g.means_, g.weights_, mu, w, *cost))
    if bic:
        g, *cost = traced(lambda: em_bic(X, 2 * k))
        rows.append(gmm_row(f"EM + BIC over 1..{2 * k}", g.means_, g.weights_, mu, w, *cost))
    return [{"n": n, "d": d, "k": k, "seed": seed, **r} for r in rows]


def em_steps(X: Any, start: SphericalGMM, steps: int) -> GaussianMixture:
    """``steps`` EM iterations of GaussianMixture started from a fitted SphericalGMM.

    ``init_params="random_from_data"``: with every ``*_init`` given the default
    ``"kmeans"`` would still run a full k-means whose result is then discarded.
    """
    k = start.n_components_
    init = {"means_init": start.means_, "weights_init": start.weights_, "init_params": "random_from_data",
            "precisions_init": np.full(k, 1 / start.variance_), "max_iter": steps}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return em(X, k, **init)


def _heaviest(means: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Finite components only (the power method's weight can be 0 on a failed start)."""
    ok = np.isfinite(weights) & np.all(np.isfinite(means), axis=1)
    return means[ok], weights[ok]


def bench_whiten(n: int, seed: int) -> list[dict[str, Any]]:
    """The default's measurement: the whitened against the raw third moment, same data and seed."""
    X, mu, w = planted_gmm(n, seed)
    rows = []
    for whiten in (True, False):
        model, wall, cpu = timed(lambda: SphericalGMM(whiten=whiten, seed=0).fit(X))
        rows.append({"n": n, "d": 10, "k": 4, "seed": seed,
                     **gmm_row(f"whiten={whiten}", model.means_, model.weights_, mu, w, wall, cpu)})
    return rows


def planted_hard(n: int, seed: int, d: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four components, an ambiguous ``M2`` spectrum: one weight 0.05, and two means at cosine 0.95."""
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.normal(size=(d, 4)))[0].T
    mu = 3 * Q
    mu[1] = 3 * (0.95 * Q[0] + np.sqrt(1 - 0.95**2) * Q[1])
    w = np.array([0.3, 0.3, 0.35, 0.05])
    z = rng.choice(4, size=n, p=w)
    return mu[z] + rng.normal(size=(n, d)), mu, w


def largest_gap(X: np.ndarray) -> int:
    """The eigengap rule: ``k`` at the largest drop between consecutive eigenvalues of ``E[x xᵀ]``."""
    ev = np.linalg.eigvalsh(X.T @ X / X.shape[0])[::-1]
    return int(np.argmax(ev[:-1] - ev[1:])) + 1


def bench_count(n: int, seed: int) -> dict[str, Any]:
    """How many components each rule finds on :func:`planted_hard` (truth: 4)."""
    X, mu, w = planted_hard(n, seed)
    model, wall, _ = timed(lambda: SphericalGMM(seed=0).fit(X))
    bic, bic_wall, _ = timed(lambda: em_bic(X, 8))
    found = model.n_components_ == 4
    return {"n": n, "seed": seed, "descent+recover": model.n_components_,
            "mean_err": matched_errors(model.means_, model.weights_, mu, w)[0] if found else float("nan"),
            "noise floor": model.candidates_, "largest eigengap": largest_gap(X),
            "EM+BIC 1..8": bic.n_components, "wall (moments)": wall, "wall (EM+BIC)": bic_wall}


def planted_ica(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    S = np.concatenate([rng.uniform(-np.sqrt(3), np.sqrt(3), size=(n, d // 2)),
                        rng.laplace(scale=1 / np.sqrt(2), size=(n, d - d // 2))], axis=1)
    A = rng.normal(size=(d, d))
    return S @ A.T + rng.normal(size=d), A


def bench_ica(n: int, d: int, seed: int) -> list[dict[str, Any]]:
    X, A = planted_ica(n, d, seed)
    ours, wall, cpu = timed(lambda: MomentICA(seed=0).fit(X))
    rows = [{"method": "moments (K4, signed)", "amari": amari_distance(ours.components_, A), "wall": wall, "cpu": cpu}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for fun in ("logcosh", "cube"):  # cube: FastICA's kurtosis contrast, the statistic K4 holds
            f, wall, cpu = timed(lambda: FastICA(whiten="unit-variance", fun=fun, random_state=0).fit(X))
            rows.append({"method": f"FastICA (fun={fun})", "amari": amari_distance(f.components_, A),
                         "wall": wall, "cpu": cpu})
    return [{"n": n, "d": d, "seed": seed, **r} for r in rows]


def planted_params(seed: int, d: int, k: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """The first draws of the tests' planted_gmm: the same means and weights for the same seed."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=d)
    mu = rng.normal(size=(k, d)) * 3 / np.sqrt(d) + 2 * base / np.linalg.norm(base)
    w = rng.uniform(1, 3, size=k)
    return rng, mu, w / w.sum()


def write_memmap(path: Path, n: int, d: int, k: int, seed: int, chunk: int = 200_000) -> None:
    """Samples of :func:`planted_params`' mixture as a float32 ``.npy`` of ``(n, d)``, written chunk by chunk."""
    rng, mu, w = planted_params(seed, d, k)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, chunk):
        b = min(chunk, n - start)
        out[start:start + b] = mu[rng.choice(k, size=b, p=w)] + rng.normal(size=(b, d))
    out.flush()


def rss_anon_mb() -> float:
    """This process's resident anonymous memory now (``RssAnon``: the heap, not the map's file pages), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 2**10
    return float("nan")


class AnonPeak:
    """The largest :func:`rss_anon_mb` seen, sampled every ``period`` seconds while in the ``with`` block."""

    def __init__(self, period: float = 0.05) -> None:
        self.period, self.peak, self._stop = period, rss_anon_mb(), threading.Event()

    def _watch(self) -> None:
        while not self._stop.wait(self.period):
            self.peak = max(self.peak, rss_anon_mb())

    def __enter__(self) -> AnonPeak:
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon_mb())


def bench_memmap(path: Path, n: int, d: int, k: int, seed: int, method: str) -> dict[str, Any]:
    """One method on the memory-mapped file; peak RSS (``ru_maxrss``, file pages of the map included)."""
    if not path.exists():
        write_memmap(path, n, d, k, seed)
    _, mu, w = planted_params(seed, d, k)
    X = np.load(path, mmap_mode="r")
    fits = {"moments": lambda: SphericalGMM(seed=0).fit(path),
            "moments+2EM": lambda: SphericalGMM(k, seed=0, em_steps=2).fit(path),
            "EM": lambda: em(X, k)}
    if method not in fits:
        raise SystemExit(f"unknown --method {method!r}: {', '.join(fits)}")
    rss0, anon0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, rss_anon_mb()
    with AnonPeak() as anon:
        fit, *cost = traced(fits[method])
    row = gmm_row(method, fit.means_, fit.weights_, mu, w, *cost)
    return {"n": n, "d": d, "k": k, "seed": seed, **row, "rss_before_MB": rss0, "anon_before_MB": anon0,
            "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, "peak_anon_MB": anon.peak}


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (n, d, method): seeds, how often ``k`` was found, mean errors over the seeds that found it, mean times."""
    out = []
    for key in dict.fromkeys((r["n"], r["d"], r["method"]) for r in rows):
        group = [r for r in rows if (r["n"], r["d"], r["method"]) == key]
        found = [r for r in group if r["k_found"] == r["k"]]
        out.append({"n": key[0], "d": key[1], "method": key[2], "seeds": len(group),
                    "k found": f"{len(found)}/{len(group)}",
                    "mean_err (mean)": float(np.mean([r["mean_err"] for r in found])) if found else float("nan"),
                    "weight_err (mean)": float(np.mean([r["weight_err"] for r in found])) if found else float("nan"),
                    "wall (mean)": float(np.mean([r["wall"] for r in group])),
                    "cpu (mean)": float(np.mean([r["cpu"] for r in group])),
                    "peak_MB (max)": float(np.max([r["peak_MB"] for r in group]))})
    return out


def fmt(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def table(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, nargs="+", default=[1e4, 1e5])
    parser.add_argument("--dims", type=int, nargs="*", default=[10, 100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--bic-max-n", type=float, default=1e5, help="EM + BIC only up to this n (2k EM fits)")
    parser.add_argument("--ica-dims", type=int, nargs="*", default=[10])
    parser.add_argument("--compare-whiten", action="store_true", help="only the whitened vs raw table (d = 10)")
    parser.add_argument("--count", action="store_true", help="only the component-count table (ambiguous spectrum)")
    parser.add_argument("--memmap", type=Path, help="a float32 .npy (written if missing) to fit one --method to")
    parser.add_argument("--method", default="moments", help="with --memmap: moments, moments+2EM or EM")
    parser.add_argument("--no-power", action="store_true", help="skip the power-method peers")
    args = parser.parse_args()
    if args.memmap is not None:
        d = args.dims[0] if args.dims else 100
        print(json.dumps(bench_memmap(args.memmap, int(args.n[0]), d, 4 if d == 10 else 10, args.seeds[0],
                                      args.method)))
        return
    if args.count:
        print(table([bench_count(int(n), s) for n in args.n for s in args.seeds]))
        return
    if args.compare_whiten:
        print(table([r for n in args.n for s in args.seeds for r in bench_whiten(int(n), s)]))
        return
    gmm, ica = [], []
    for d in args.dims:
        k = 4 if d == 10 else 10
        for n in (int(v) for v in args.n):
            for seed in args.seeds:
                gmm += bench_gmm(n, d, k, seed, bic=n <= args.bic_max_n, power=not args.no_power)
                print(table(gmm[-8:]), file=sys.stderr, flush=True)
    for d in args.ica_dims:
        for n in (int(v) for v in args.n):
            for seed in args.seeds:
                ica += bench_ica(n, d, seed)
    if gmm:
        print("## Spherical Gaussian mixtures\n")
        print(table(gmm))
        print("\n## Over the seeds\n")
        print(table(summary(gmm)))
    if ica:
        print("\n## ICA\n")
        print(table(ica))


if __name__ == "__main__":
    main()
