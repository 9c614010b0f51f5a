r"""From ``m`` learned components back to the ``r`` the user came for.

:func:`recover` turns an over-parameterized model ``Σ_i s_i w̄_i^{⊗l}`` into
``r̂`` components:

1. drop components with mass ``|s_i| < mass_fraction · max_k |s_k|``;
2. cluster directions greedily, heaviest first: a cluster takes every
   unassigned direction with ``cos >= τ`` to its seed (``|cos|`` for even
   ``l``, where ``-v`` and ``v`` give the same ``v^{⊗l}``; signs are flipped);
3. each cluster becomes one component: the mass-weighted mean direction
   ``ū ∝ Σ_i s_i σ_i w̄_i`` with weight ``Σ_i s_i <w̄_i, ū>^l``
   (the cluster's tensor evaluated at ``ū``);
4. optionally polish at ``m = r̂`` by Levenberg–Marquardt (:func:`polish`), which
   converges superlinearly on an exactly low-rank target.

:func:`match` compares a recovered tensor with a known truth by the
Hungarian method on ``|cos|``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dense import Tensor
from .errors import OvertensorError
from .result import DecompositionResult
from .symcp import SymCP

__all__ = ["recover", "polish", "match", "Match", "cluster_directions", "merge_clusters"]


def _check_cos(name: str, value: float) -> float:
    if not np.isfinite(value) or not 0 < value <= 1:
        raise OvertensorError(f"{name} must lie in (0, 1], got {value!r}")
    return float(value)


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


def recover(model: SymCP, *, mass_fraction: float = 1e-2, cos: float = 0.99, polish_target: Tensor | None = None,
            polish_steps: int = 100) -> SymCP:
    """Turn ``m`` learned components into ``r̂`` (a rank estimate).

    Parameters
    ----------
    model : SymCP, e.g. ``result.model`` of a decomposition (any weights and vectors)
    mass_fraction : float in [0, 1), drop components whose mass ``|λ_i| ‖v_i‖^l``
        is below this fraction of the largest
    cos : float in (0, 1], ``τ``: directions with ``cos >= τ`` (``|cos|`` for even order) merge
    polish_target : SymCP or DenseSymTensor, optional; when given, polish the ``r̂``
        components on it by Levenberg–Marquardt (:func:`polish`, default tolerances)
    polish_steps : int, the polish's iteration budget

    Returns
    -------
    SymCP with ``r̂`` unit vectors, heaviest cluster first.
    """
    if not np.isfinite(mass_fraction) or not 0 <= mass_fraction < 1:
        raise OvertensorError(f"mass_fraction must lie in [0, 1), got {mass_fraction!r}")
    cos = _check_cos("cos", cos)
    canon = model.normalize()
    masses = np.abs(canon.weights)
    if masses.size == 0:
        return canon
    keep = masses >= mass_fraction * masses.max()
    weights, directions = canon.weights[keep], canon.vectors[keep]
    labels, signs = cluster_directions(directions, weights, cos, even=model.order % 2 == 0)
    mean, _, projected = merge_clusters(weights, directions, labels, signs, model.order)
    out = SymCP(projected, mean, model.order)
    if polish_target is not None:
        out = polish(out, polish_target, max_steps=polish_steps).model
    return out


def polish(model: SymCP, target: Tensor, *, max_steps: int = 100, tol: float = 1e-12, ftol: float = 1e-10,
           xtol: float = 1e-15, cg_tol: float = 1e-10) -> DecompositionResult:
    """Levenberg–Marquardt on ``½‖T(W) - T*‖²`` from the components of ``model``, ``m = model.rank``.

    ``T(W) = Σ_i σ_i w_i^{⊗l}`` starts at ``w_i = |λ_i|^{1/l} v̄_i``, ``σ_i = sign λ_i``
    (zero components dropped); each iteration solves ``(JᵀJ + μ I) h = -Jᵀ R`` by
    preconditioned CG with matrix-free ``JᵀJ`` products (``O(m² d)``), see
    :mod:`overtensor.solvers.newton`. ``result.relative_error`` is computed without
    the difference of squares (:func:`overtensor.residual.residual_norm`), and
    ``result.info["stop"]`` names the rule that stopped: ``tol``, ``ftol``, ``xtol``
    or ``max_steps``. The same as ``decompose(target, model.rank, "polish", init=model)``.

    Parameters
    ----------
    model : SymCP, the starting components (e.g. from :func:`recover`)
    target : SymCP or DenseSymTensor
    max_steps : int, LM iterations
    tol : float, stop at relative error ``<= tol``
    ftol : float, stop once an accepted step lowers ``‖R‖`` by less than ``ftol ‖R‖``
    xtol : float, stop once the step ``‖h‖ <= xtol ‖W‖``
    cg_tol : float, relative residual at which each CG solve stops
    """
    from .solvers.newton import check_options, solve_batch  # here: the solvers import this module's clustering
    from .solvers.problem import make_problem

    check_options(max_steps, tol, ftol, xtol, cg_tol)  # before reading the model: spec loading relies on it
    canon = model.normalize()
    if canon.rank == 0:
        raise OvertensorError("cannot polish a model with no components")
    problem = make_problem([target], canon.rank, [0])
    return solve_batch(problem, init=canon, max_steps=max_steps, tol=tol, ftol=ftol, xtol=xtol, cg_tol=cg_tol)[0]


@dataclass(frozen=True)
class Match:
    """A recovered tensor against the truth, paired by the Hungarian method on ``|cos|``.

    Attributes
    ----------
    cosines : (r,) array, ``|cos|`` of each true component with its partner
        (0 when it has none: fewer recovered than true components)
    weight_errors : (r,) array, ``|σ^l ĉ - c| / |c|`` with the partner's weight
        ``ĉ`` and ``σ`` the sign of the cosine (NaN without a partner)
    partners : (r,) int array, index of the partner in the recovered tensor, -1 for none
    missing : indices of true components whose ``|cos|`` with the partner is below
        the threshold (or that have no partner)
    spurious : indices of recovered components matched to no true one
    threshold : float, the ``|cos|`` a pair needs to count as matched
    """

    cosines: np.ndarray
    weight_errors: np.ndarray
    partners: np.ndarray
    missing: tuple[int, ...]
    spurious: tuple[int, ...]
    threshold: float

    @property
    def min_cosine(self) -> float:
        """The worst true component's ``|cos|`` with its partner (0 if one has none)."""
        return float(self.cosines.min()) if self.cosines.size else 1.0

    def summary(self) -> dict[str, object]:
        """JSON-ready: ``min_cosine``, ``missing``, ``spurious``."""
        return {"min_cosine": self.min_cosine, "missing": list(self.missing), "spurious": list(self.spurious)}


def match(recovered: SymCP, truth: SymCP, *, threshold: float = 0.99) -> Match:
    """Pair recovered and true components by maximal total ``|cos|``.

    Both tensors are put in canonical form first (:meth:`SymCP.normalize`:
    unit vectors, zero components dropped), and indices refer to that form,
    which keeps the order of the nonzero components.

    Parameters
    ----------
    recovered, truth : SymCP of the same order and dimension
    threshold : float in (0, 1], ``|cos|`` needed for a pair to count as matched
    """
    threshold = _check_cos("threshold", threshold)
    if not isinstance(recovered, SymCP) or not isinstance(truth, SymCP):
        raise OvertensorError("match compares two factored tensors (SymCP)")
    truth._check_compatible(recovered)
    rec, tru = recovered.normalize(), truth.normalize()
    r = tru.rank
    C = tru.vectors @ rec.vectors.T  # (r, r̂)
    from scipy.optimize import linear_sum_assignment  # imported here: scipy.optimize is slow to load

    rows, cols = linear_sum_assignment(-np.abs(C))
    partners = np.full(r, -1)
    partners[rows] = cols
    cosines = np.zeros(r)
    cosines[rows] = np.abs(C[rows, cols])
    weight_errors = np.full(r, np.nan)
    sign = np.where(C[rows, cols] < 0, -1.0, 1.0) ** tru.order
    weight_errors[rows] = np.abs(sign * rec.weights[cols] - tru.weights[rows]) / np.abs(tru.weights[rows])
    ok = cosines >= threshold
    missing = tuple(int(j) for j in np.flatnonzero(~ok))
    matched = set(partners[ok].tolist())
    spurious = tuple(i for i in range(rec.rank) if i not in matched)
    return Match(cosines, weight_errors, partners, missing, spurious, threshold)
