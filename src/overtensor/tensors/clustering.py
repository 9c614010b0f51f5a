r"""Greedy clustering of component directions and one merged component per cluster.

Shared by :func:`overtensor.analysis.recovery.recover` and the merge step of
:mod:`overtensor.solvers.beyond_lazy`: directions with ``cos >= τ`` (``|cos|`` at even
order, signs flipped) join the heaviest unassigned seed; a cluster becomes the
mass-weighted mean direction ``ū ∝ Σ_i s_i σ_i w̄_i``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cluster_directions", "merge_clusters"]


def cluster_directions(directions: np.ndarray, masses: np.ndarray, cos: float,
                       even: bool) -> tuple[np.ndarray, np.ndarray]:
    """Greedy clustering of unit directions, heaviest first.

    Parameters
    ----------
    directions : (n, d) array of unit (or zero) rows
    masses : (n,) array; the heaviest unassigned direction seeds the next cluster
    cos : float, ``τ``: a direction joins a seed with ``cos >= τ``
    even : bool, compare ``|cos|`` and flip signs (even order)

    Returns
    -------
    labels : (n,) int, cluster of each direction; cluster ``k`` is seeded by
        the ``k``-th heaviest seed, which is its heaviest member
    signs : (n,) float, ``±1``: ``signs[i] · directions[i]`` points along the seed
    """
    n = directions.shape[0]
    labels = np.full(n, -1)
    signs = np.ones(n)
    C = directions @ directions.T
    k = 0
    for i in np.argsort(-np.abs(masses), kind="stable"):
        if labels[i] >= 0:
            continue
        near = ((np.abs(C[i]) if even else C[i]) >= cos) & (labels < 0)
        near[i] = True  # a zero row still seeds its own cluster
        labels[near] = k
        if even:
            signs[near] = np.where(C[i, near] < 0, -1.0, 1.0)
        k += 1
    return labels, signs


def merge_clusters(weights: np.ndarray, directions: np.ndarray, labels: np.ndarray, signs: np.ndarray,
                   order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One component per cluster: mass-weighted mean direction and total mass.

    Parameters
    ----------
    weights : (n,) array, ``s_i``; directions : (n, d) unit rows
    labels, signs : from :func:`cluster_directions`

    Returns
    -------
    mean : (k, d) unit rows ``ū_k ∝ Σ_{i∈k} s_i σ_i w̄_i``
    total : (k,) array, ``Σ_{i∈k} s_i``
    projected : (k,) array, ``Σ_{i∈k} s_i <w̄_i, ū_k>^l``
    """
    k = int(labels.max()) + 1 if labels.size else 0
    mean = np.zeros((k, directions.shape[1]))
    np.add.at(mean, labels, (weights * signs)[:, None] * directions)
    norms = np.linalg.norm(mean, axis=1, keepdims=True)
    mean = mean / np.where(norms > 0, norms, 1.0)
    total = np.bincount(labels, weights, minlength=k)
    along = np.sum(directions * mean[labels], axis=1)
    projected = np.bincount(labels, weights * along**order, minlength=k)
    return mean, total, projected
