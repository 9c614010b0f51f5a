"""Where SphericalGMM's error comes from: the moment estimate with one ingredient replaced by the truth.

On the planted mixtures of tests/test_models.py (``d = 100, k = 10``), the whitened
pipeline of ``SphericalGMM(k)`` is rerun with

- ``polish``: Levenberg–Marquardt on the ``k`` recovered components (``m = k``, the
  small whitened ``M3``), to see if the descent's stopping point costs accuracy;
- ``true σ²``: σ² = 1 instead of the mean of the smallest covariance eigenvalues;
- ``true span``: the eigenvectors of the population ``M2 = Σ w_j μ_j μ_jᵀ`` with the
  sample ``M2`` restricted to them (the in-span whitening from the samples);
- ``true in-span M2``: the sample eigenvectors with the population ``M2`` restricted to
  them (only the in-span whitening from the truth);
- ``true M2``: both.

Each row is the matched ``max_j ‖μ̂_j - μ_j‖ / ‖μ_j‖`` (nan where the count is not ``k``).

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python benchmarks/diagnose_gmm.py --n 1e5 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_models import matched_errors, planted_gmm

import overtensor as ot
from overtensor.models import SphericalGMM
from overtensor.models.gmm import MAX_WEIGHT


class Polished(SphericalGMM):
    """SphericalGMM whose recovered components are polished (LM, ``m = k``) on the whitened moment."""

    def _decompose(self, target, k_hat, seed, given, tol=1e-4):  # type: ignore[no-untyped-def]
        comps = super()._decompose(target, k_hat, seed, given, tol)
        keep = comps.weights > 0
        keep &= comps.weights**-2.0 <= MAX_WEIGHT  # what the weight screen keeps afterwards anyway
        start = ot.SymCP(comps.weights[keep], comps.vectors[keep], 3)
        return ot.polish(start, target).model.normalize()


def whitened_means(est: SphericalGMM, X: np.ndarray, k: int, sigma2: float, span: np.ndarray,
                   scale: np.ndarray) -> np.ndarray | None:
    """Means from the whitened pipeline with eigenvectors of ``span`` and the in-span metric of ``scale``."""
    T = ot.moment_tensor(X, 3)
    U = np.linalg.eigh(span)[1][:, ::-1][:, :k]
    lam, R = np.linalg.eigh(U.T @ scale @ U)  # in-span whitening from ``scale``
    means, _ = est._fit_whitened(T - sigma2 * ot.CorrectionS(T.mean), U @ R, lam, 0, None)
    return means if means.shape[0] == k else None


def rows(n: int, seed: int, d: int = 100, k: int = 10) -> list[tuple[str, float]]:
    X, mu, w = planted_gmm(n, seed, d=d, k=k)
    M2_true = (w[:, None] * mu).T @ mu
    ref = SphericalGMM(k, seed=0).fit(X)
    s2 = ref.variance_
    T = ot.moment_tensor(X, 3)
    M2 = T.second_moment - s2 * np.eye(d)
    M2_unit = T.second_moment - np.eye(d)
    variants = {"SphericalGMM(k)": (SphericalGMM(k, seed=0), s2, M2, M2),
                "polish (m = k)": (Polished(k, seed=0), s2, M2, M2),
                "true σ²": (SphericalGMM(k, seed=0), 1.0, M2_unit, M2_unit),
                "true span": (SphericalGMM(k, seed=0), s2, M2_true, M2),
                "true in-span M2": (SphericalGMM(k, seed=0), s2, M2, M2_true),
                "true M2": (SphericalGMM(k, seed=0), s2, M2_true, M2_true)}
    out = []
    for name, (est, sigma2, span, scale) in variants.items():
        means = whitened_means(est, X, k, sigma2, span, scale)
        err = float("nan") if means is None else matched_errors(means, np.full(k, 1 / k), mu, w)[0]
        out.append((name, err))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, nargs="+", default=[1e5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    results = {(int(n), s): dict(rows(int(n), s)) for n in args.n for s in args.seeds}
    names = list(next(iter(results.values())))
    print("| variant | " + " | ".join(f"n={n:.0e}, seed {s}" for n, s in results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{r[name]:.3g}" for r in results.values()) + " |")


if __name__ == "__main__":
    main()
