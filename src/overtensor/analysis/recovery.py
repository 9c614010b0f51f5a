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
4. polishing at ``m = r̂`` (Levenberg–Marquardt, :func:`overtensor.pipeline.polish`)
   converges superlinearly from there on an exactly low-rank target.

:func:`match` compares a recovered tensor with a known truth by the
Hungarian method on ``|cos|``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OvertensorError
from ..tensors.clustering import cluster_directions, merge_clusters
from ..tensors.symcp import SymCP

__all__ = ["recover", "match", "Match"]


def _check_cos(name: str, value: float) -> float:
    if not np.isfinite(value) or not 0 < value <= 1:
        raise OvertensorError(f"{name} must lie in (0, 1], got {value!r}")
    return float(value)


def recover(model: SymCP, *, mass_fraction: float = 1e-2, cos: float = 0.99) -> SymCP:
    """Turn ``m`` learned components into ``r̂`` (a rank estimate).

    Parameters
    ----------
    model : SymCP, e.g. ``result.model`` of a decomposition (any weights and vectors)
    mass_fraction : float in [0, 1), drop components whose mass ``|λ_i| ‖v_i‖^l``
        is below this fraction of the largest
    cos : float in (0, 1], ``τ``: directions with ``cos >= τ`` (``|cos|`` for even order) merge

    Returns
    -------
    SymCP with ``r̂`` unit vectors, heaviest cluster first.

    Examples
    --------
    >>> import numpy as np
    >>> import overtensor as ot
    >>> e = np.eye(3)
    >>> model = ot.SymCP([0.5, 0.5, 1.0, 1e-4], [e[0], e[0], e[1], e[2]], 3)  # a duplicate, a dust
    >>> rec = ot.recover(model)
    >>> rec.rank, rec.weights.tolist()                     # the halves merge, the dust is dropped
    (2, [1.0, 1.0])
    >>> ot.residual_norm(rec, ot.SymCP([1.0, 1.0], e[:2], 3)) < 1e-12
    True
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
    return SymCP(projected, mean, model.order)


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

    Examples
    --------
    >>> import numpy as np
    >>> import overtensor as ot
    >>> truth = ot.SymCP([1.0, 2.0, 3.0], np.eye(3), 3)
    >>> found = ot.SymCP([3.0, 1.05], [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], 3)  # misses component 1
    >>> m = ot.match(found, truth)
    >>> m.partners.tolist(), m.missing, m.spurious
    ([1, -1, 0], (1,), ())
    >>> np.round(m.weight_errors, 3).tolist()             # |1.05 - 1| / 1, no partner, exact
    [0.05, nan, 0.0]
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
