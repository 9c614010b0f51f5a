r"""From ``m`` learned components back to the ``r`` the user came for.

:func:`recover` turns an over-parameterized model ``Σ_i s_i w̄_i^{⊗l}`` into
``r̂`` components:

1. drop the leftovers: components whose mass lies below the first drop by a
   factor ``>= gap`` in the sorted masses (re-drawn and unused components keep
   masses near ``δ_0²``, about ``1e-6 ‖T*‖`` at the default init scale, far
   below any fitted weight; without such a drop, below ``1e-3`` of the
   largest, under the smallest weight of a 100x spread), or, with
   ``mass_fraction``, below that fraction of the largest;
2. cluster directions greedily, heaviest first: a cluster takes every
   unassigned direction with ``cos >= τ`` to its seed (``|cos|`` for even
   ``l``, where ``-v`` and ``v`` give the same ``v^{⊗l}``; also for odd ``l``,
   where ``λ (-v)^{⊗l} = -λ v^{⊗l}``: ALS's symmetrized factors hold ``±v``
   pairs that sum to one component); signs are flipped;
   a cluster whose signed parts cancel (weight below half the cut) is dropped;
3. each cluster becomes one component: the mass-weighted mean direction
   ``ū ∝ Σ_i s_i σ_i w̄_i`` with weight ``Σ_i s_i <w̄_i, ū>^l``
   (the cluster's tensor evaluated at ``ū``);
4. polishing at ``m = r̂`` (Levenberg–Marquardt, :func:`overtensor.pipeline.polish`)
   converges superlinearly from there on an exactly low-rank target.

:func:`match` compares a recovered tensor with a known truth by the
Hungarian method on ``|cos|``: a true component counts as found only when
its partner is within ``|cos| >= 0.99`` *and* its weight within 10%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OvertensorError
from ..tensors.clustering import cluster_directions, merge_clusters
from ..tensors.symcp import SymCP

__all__ = ["recover", "match", "Match", "mass_cut", "DEFAULT_GAP", "FALLBACK_FRACTION", "WEIGHT_TOLERANCE"]

#: A drop by this factor between consecutive sorted masses separates fitted components from leftovers.
#: The hard family's weights span 100x, so no drop between its true weights comes near it, while
#: leftovers sit near ``δ_0² ≈ 1e-6 ‖T*‖``, 1e4 below a weight of 0.01.
DEFAULT_GAP = 1e3
#: Relative weight error within which a matched component counts as found (docs/design.md section 6).
WEIGHT_TOLERANCE = 0.1
#: Without a drop of ``gap``, masses below this fraction of the largest are leftovers (10x under 1/spread
#: for the hard family's spread 100, so its smallest component survives).
FALLBACK_FRACTION = 1e-3


def _check_cos(name: str, value: float) -> float:
    if not np.isfinite(value) or not 0 < value <= 1:
        raise OvertensorError(f"{name} must lie in (0, 1], got {value!r}")
    return float(value)


def mass_cut(masses: np.ndarray, gap: float = DEFAULT_GAP) -> float:
    """The mass below which components are leftovers: the first drop by ``>= gap`` from the top.

    Parameters
    ----------
    masses : (m,) array of masses ``>= 0``
    gap : float > 1, the factor between consecutive sorted masses that separates fitted
        components from leftovers

    Returns
    -------
    float: keep the masses ``>=`` it; without such a drop, ``FALLBACK_FRACTION`` of the largest
    (gradient descent without re-drawing leaves a continuum of shrinking leftovers, no gap).
    """
    ordered = np.sort(masses[masses > 0])[::-1]
    if ordered.size == 0:
        return 0.0
    drops = np.flatnonzero(ordered[:-1] >= gap * ordered[1:])
    return float(ordered[drops[0]]) if drops.size else FALLBACK_FRACTION * float(ordered[0])


def recover(model: SymCP, *, mass_fraction: float | None = None, gap: float = DEFAULT_GAP,
            cos: float = 0.99) -> SymCP:
    """Turn ``m`` learned components into ``r̂`` (a rank estimate).

    Parameters
    ----------
    model : SymCP, e.g. ``result.model`` of a decomposition (any weights and vectors)
    mass_fraction : float in [0, 1), optional; drop components whose mass ``|λ_i| ‖v_i‖^l``
        is below this fraction of the largest. None (default): drop those below the first
        drop by a factor ``>= gap`` in the sorted masses (:func:`mass_cut`), the leftovers'
        scale. (A fixed fraction such as 1% drops a true weight-0.01 component at spread 100.)
    gap : float > 1, see :func:`mass_cut`
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
    if mass_fraction is not None and not (np.isfinite(mass_fraction) and 0 <= mass_fraction < 1):
        raise OvertensorError(f"mass_fraction must lie in [0, 1), got {mass_fraction!r}")
    if not (np.isfinite(gap) and gap > 1):
        raise OvertensorError(f"gap must be a finite number > 1, got {gap!r}")
    cos = _check_cos("cos", cos)
    canon = model.normalize()
    masses = np.abs(canon.weights)
    if masses.size == 0:
        return canon
    cut = mass_cut(masses, gap) if mass_fraction is None else mass_fraction * masses.max()
    keep = masses >= cut
    weights, directions = canon.weights[keep], canon.vectors[keep]
    # λ (σv)^{⊗l} = σ^l λ v^{⊗l}: v and -v are one direction at any order, with the weight's sign
    # flipped at odd order (ALS's symmetrized factors hold ±v pairs that sum to one component)
    labels, signs = cluster_directions(directions, weights, cos, even=True)
    mean, _, projected = merge_clusters(weights * signs**model.order, directions * signs[:, None], labels,
                                        np.ones_like(signs), model.order)
    kept = np.abs(projected) >= 0.5 * cut  # a cluster whose signed parts cancel is no component
    return SymCP(projected[kept], mean[kept], model.order)


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
    missing : indices of true components not found: no partner, ``|cos|`` with the partner
        below ``threshold``, or a weight error above ``weight_tolerance``
    spurious : indices of recovered components matched to no true one
    threshold : float, the ``|cos|`` a pair needs to count as matched
    weight_tolerance : float, the relative weight error a pair may have
    """

    cosines: np.ndarray
    weight_errors: np.ndarray
    partners: np.ndarray
    missing: tuple[int, ...]
    spurious: tuple[int, ...]
    threshold: float
    weight_tolerance: float = WEIGHT_TOLERANCE

    @property
    def min_cosine(self) -> float:
        """The worst true component's ``|cos|`` with its partner (0 if one has none)."""
        return float(self.cosines.min()) if self.cosines.size else 1.0

    @property
    def max_weight_error(self) -> float:
        """The worst true component's weight error; 1 for one without a partner (as if its weight were 0)."""
        errors = np.where(np.isnan(self.weight_errors), 1.0, self.weight_errors)
        return float(errors.max()) if errors.size else 0.0

    @property
    def recovered(self) -> bool:
        """The recovery criterion: every true component found and nothing spurious."""
        return not self.missing and not self.spurious

    def summary(self) -> dict[str, object]:
        """JSON-ready: ``recovered``, ``min_cosine``, ``max_weight_error``, ``missing``, ``spurious``."""
        return {"recovered": self.recovered, "min_cosine": self.min_cosine,
                "max_weight_error": self.max_weight_error, "missing": list(self.missing),
                "spurious": list(self.spurious)}


def match(recovered: SymCP, truth: SymCP, *, threshold: float = 0.99,
          weight_tolerance: float = WEIGHT_TOLERANCE) -> Match:
    """Pair recovered and true components by maximal total ``|cos|``; a pair matches when
    ``|cos| >= threshold`` and the weight error is ``<= weight_tolerance``.

    Both tensors are put in canonical form first (:meth:`SymCP.normalize`:
    unit vectors, zero components dropped), and indices refer to that form,
    which keeps the order of the nonzero components.

    Parameters
    ----------
    recovered, truth : SymCP of the same order and dimension
    threshold : float in (0, 1], ``|cos|`` needed for a pair to count as matched
    weight_tolerance : float >= 0, relative weight error ``|σ^l ĉ - c| / |c|`` allowed (``inf``: ignore weights)

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
    if np.isnan(weight_tolerance) or weight_tolerance < 0:
        raise OvertensorError(f"weight_tolerance must be a number >= 0, got {weight_tolerance!r}")
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
    with np.errstate(invalid="ignore"):  # NaN (no partner) compares False
        ok = (cosines >= threshold) & (weight_errors <= weight_tolerance)
    missing = tuple(int(j) for j in np.flatnonzero(~ok))
    matched = set(partners[ok].tolist())
    spurious = tuple(i for i in range(rec.rank) if i not in matched)
    return Match(cosines, weight_errors, partners, missing, spurious, threshold, float(weight_tolerance))
