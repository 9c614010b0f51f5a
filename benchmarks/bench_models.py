"""SphericalGMM and MomentICA against scikit-learn's EM (GaussianMixture, spherical) and FastICA.

Planted spherical mixtures (means sharing an offset, so not orthogonal; weights
uniform in [1, 3], normalized; σ² = 1) and ICA mixtures (half uniform, half
Laplace sources, a Gaussian random mixing matrix). Reports the matched mean error
``max_j ‖μ̂_j - μ_j‖ / ‖μ_j‖``, the weight error ``max_j |ŵ_j - w_j|``, whether the
number of components was found, the Amari distance, wall and CPU seconds.

Run from the repository root, one BLAS thread (the machine is shared)::

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_models.py --n 1e4 1e5 --dims 10 100
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_models import matched_errors, planted_gmm

from overtensor.models import MomentICA, SphericalGMM, amari_distance


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def gmm_row(name: str, means: np.ndarray, weights: np.ndarray, mu: np.ndarray, w: np.ndarray,
            wall: float, cpu: float) -> dict[str, Any]:
    found = means.shape[0] == mu.shape[0]
    mean_err, weight_err = matched_errors(means, weights, mu, w) if found else (float("nan"), float("nan"))
    return {"method": name, "k_found": int(means.shape[0]), "mean_err": mean_err, "weight_err": weight_err,
            "wall": wall, "cpu": cpu}


def em(X: np.ndarray, k: int, **init: Any) -> GaussianMixture:
    return GaussianMixture(k, covariance_type="spherical", random_state=0, **init).fit(X)


def em_bic(X: np.ndarray, top: int) -> GaussianMixture:
    fits = [em(X, j) for j in range(1, top + 1)]
    return min(fits, key=lambda g: g.bic(X))


def bench_gmm(n: int, d: int, k: int, seed: int, bic: bool) -> list[dict[str, Any]]:
    X, mu, w = planted_gmm(n, seed, d=d, k=k)
    rows = []
    ours, wall, cpu = timed(lambda: SphericalGMM(seed=0).fit(X))
    rows.append(gmm_row("moments (auto k)", ours.means_, ours.weights_, mu, w, wall, cpu))
    given, wall, cpu = timed(lambda: SphericalGMM(k, seed=0).fit(X))
    rows.append(gmm_row("moments (k given)", given.means_, given.weights_, mu, w, wall, cpu))
    if given.n_components_ == k:
        init = {"means_init": given.means_, "weights_init": given.weights_,
                "precisions_init": np.full(k, 1 / given.variance_), "max_iter": 2}
        g2, wall2, cpu2 = timed(lambda: em(X, k, **init))
        rows.append(gmm_row("moments + 2 EM steps", g2.means_, g2.weights_, mu, w, wall + wall2, cpu + cpu2))
    g, wall, cpu = timed(lambda: em(X, k))
    rows.append(gmm_row("EM (k given)", g.means_, g.weights_, mu, w, wall, cpu))
    if bic:
        g, wall, cpu = timed(lambda: em_bic(X, 2 * k))
        rows.append(gmm_row(f"EM + BIC over 1..{2 * k}", g.means_, g.weights_, mu, w, wall, cpu))
    return [{"n": n, "d": d, "k": k, "seed": seed, **r} for r in rows]


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
        f, wall, cpu = timed(lambda: FastICA(whiten="unit-variance", random_state=0).fit(X))
    rows.append({"method": "FastICA", "amari": amari_distance(f.components_, A), "wall": wall, "cpu": cpu})
    return [{"n": n, "d": d, "seed": seed, **r} for r in rows]


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
    args = parser.parse_args()
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
                gmm += bench_gmm(n, d, k, seed, bic=n <= args.bic_max_n)
                print(table(gmm[-5:]), file=sys.stderr, flush=True)
    for d in args.ica_dims:
        for n in (int(v) for v in args.n):
            for seed in args.seeds:
                ica += bench_ica(n, d, seed)
    if gmm:
        print("## Spherical Gaussian mixtures\n")
        print(table(gmm))
    if ica:
        print("\n## ICA\n")
        print(table(ica))


if __name__ == "__main__":
    main()
