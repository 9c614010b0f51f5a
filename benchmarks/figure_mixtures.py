"""Figures of docs/tutorial-mixtures.md: recovered against true means, and mean error against n.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/figure_mixtures.py [--seeds 3] [--out docs/figures]

Planted spherical mixtures ``x ~ Σ_j w_j N(μ_j, I)`` in ``d = 10`` with ``k = 4`` components whose
means share an offset (pairwise cosines up to ~0.7) and weights in ``[1, 3]/Σ`` (the tests' family).
For each ``n`` and seed: ``SphericalGMM()`` (number of components found by itself), the same plus two EM
steps started from it, and scikit-learn's ``GaussianMixture(covariance_type="spherical")`` with ``k``
given. Prints the median matched mean error ``max_j ‖μ̂_j - μ_j‖ / ‖μ_j‖`` per ``n`` and method.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.mixture import GaussianMixture

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_models import matched_errors, planted_gmm

from overtensor.models import SphericalGMM

NS = [10_000, 30_000, 100_000, 300_000]
K = 4


def partners(means: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """For each true mean, the fitted one matched_errors pairs it with."""
    C = np.linalg.norm(mu[:, None] - means[None], axis=2) / np.linalg.norm(mu, axis=1)[:, None]
    return means[linear_sum_assignment(C)[1]]


def fits(X: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``(means, weights)`` of each method."""
    ours = SphericalGMM(seed=0).fit(X)
    k = ours.n_components_
    em2 = GaussianMixture(k, covariance_type="spherical", means_init=ours.means_, weights_init=ours.weights_,
                          max_iter=2, tol=0.0, random_state=0).fit(X)
    em = GaussianMixture(K, covariance_type="spherical", random_state=0).fit(X)
    return {"SphericalGMM (k found)": (ours.means_, ours.weights_), "+ 2 EM steps": (em2.means_, em2.weights_),
            "EM, k given": (em.means_, em.weights_)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    errors: dict[str, list[list[float]]] = {}
    for n in NS:
        for seed in range(args.seeds):
            X, mu, w = planted_gmm(n, seed)
            for name, (means, weights) in fits(X).items():
                errors.setdefault(name, [[] for _ in NS])[NS.index(n)].append(matched_errors(means, weights, mu, w)[0])
    print("| n | " + " | ".join(errors) + " |\n|---|" + "---|" * len(errors))
    for i, n in enumerate(NS):
        print(f"| {n} | " + " | ".join(f"{np.median(e[i]):.3g}" for e in errors.values()) + " |")
    _error_figure(errors, args.out / "mixtures_error_vs_n.png")
    X, mu, _ = planted_gmm(100_000, 0)
    _means_figure(mu, {name: means for name, (means, _) in fits(X).items()}, args.out / "mixtures_means.png")


def _error_figure(errors: dict[str, list[list[float]]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, per_n in errors.items():
        ax.loglog(NS, [np.median(e) for e in per_n], "o-", label=name)
    ref = np.median(errors["EM, k given"][0]) * np.sqrt(NS[0] / np.array(NS))
    ax.loglog(NS, ref, "k:", label=r"$\propto 1/\sqrt{n}$")
    ax.set_xlabel("samples n")
    ax.set_ylabel(r"matched mean error $\max_j \|\hat\mu_j-\mu_j\|/\|\mu_j\|$")
    ax.set_title("d = 10, k = 4 (median over seeds)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _means_figure(mu: np.ndarray, found: dict[str, np.ndarray], path: Path) -> None:
    # the plane of the two leading principal directions of the true means (centred)
    centre = mu.mean(axis=0)
    P = np.linalg.svd(mu - centre, full_matrices=False)[2][:2].T
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.scatter(*((mu - centre) @ P).T, s=160, facecolors="none", edgecolors="k", label="true means")
    for (name, means), marker in zip(found.items(), ["x", "+", "."]):
        ax.scatter(*((partners(means, mu) - centre) @ P).T, marker=marker, s=70, label=name)
    ax.set_title("n = 100,000, seed 0: means in their principal plane", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
