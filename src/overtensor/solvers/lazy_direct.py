r"""The lazy projection by a direct least-squares solve on the explicit Jacobian.

Conjugate gradients on the normal equations ``K U = b`` square the condition
number of the tangent map ``A``. At ``m d = C(d+l-1, l)`` the map is square and
ill-conditioned, and CG can meet its tolerance on ``‖b - K U‖`` while the
projection residual is still off in the sixth digit. Here ``A`` is written out
in an orthonormal basis of ``Sym^l(R^d)``,

    E_α = N_α^{-1/2} Σ_{permutations π of α} e_{π(1)} ⊗ ... ⊗ e_{π(l)},

one per sorted multi-index ``α`` (``N_α`` distinct permutations), so that
``<T, E_α> = N_α^{1/2} T[α]``, and ``min_U ‖t - J U‖`` is solved by a
rank-revealing QR (LAPACK ``gelsy``). The residual ``‖t - J U‖`` is then computed
directly, not as a difference of squares. ``J`` has ``C(d+l-1, l) × m d``
entries, so this is for small problems (:data:`DENSE_LIMIT`).

Where the parameter count is not enough (:data:`ALEXANDER_HIRSCHOWITZ`, and
``l = 2``) :func:`tangent_dimension` gives the generic dimension of the tangent space.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..tensors.dense import DenseSymTensor
from ..tensors.symcp import SymCP

__all__ = ["DENSE_LIMIT", "RANK_CUTOFF", "ALEXANDER_HIRSCHOWITZ", "tangent_dimension", "multi_indices", "jacobian",
           "coordinates", "lstsq_project"]

#: Largest ``C(d+l-1, l) · m d`` (entries of ``J``, 8 bytes each: 128 MB) solved directly.
DENSE_LIMIT = 16_000_000

#: Singular values of ``J`` below this times the largest count as zero (its numerical rank).
RANK_CUTOFF = 1e-10

#: ``(order, dim) -> m``: the Alexander–Hirschowitz exceptions with ``l >= 3`` (Alexander and
#: Hirschowitz 1995). There the tangent space at ``m`` generic points has dimension one less than
#: ``min(m d, C(d+l-1, l))``, although ``m d >= C(d+l-1, l)``; every other ``(l >= 3, d, m)``
#: reaches the count.
ALEXANDER_HIRSCHOWITZ = {(3, 5): 7, (4, 3): 5, (4, 4): 9, (4, 5): 14}


def tangent_dimension(dim: int, order: int, components: int) -> int:
    """Generic dimension of the tangent space ``𝒯`` at ``m`` random directions (Terracini's lemma).

    ``min(m d, C(d+l-1, l))`` except: at ``l = 2``, ``m d - m(m-1)/2`` for ``m <= d`` (symmetric
    matrices of rank ``m``), so a full fit needs ``m = d``; at an Alexander–Hirschowitz
    exception, one less.
    """
    full = math.comb(dim + order - 1, order)
    if order == 1:
        return min(components, 1) * dim
    if order == 2:
        m = min(components, dim)
        return m * dim - m * (m - 1) // 2
    expected = min(components * dim, full)
    return expected - 1 if ALEXANDER_HIRSCHOWITZ.get((order, dim)) == components else expected


def multi_indices(dim: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted multi-indices ``α (C, l)`` of ``Sym^l(R^d)`` and their permutation counts ``N_α (C,)``."""
    alpha = np.array(list(itertools.combinations_with_replacement(range(dim), order)), dtype=np.intp)
    counts = np.array([math.factorial(order) / math.prod(math.factorial(row.count(k)) for k in set(row))
                       for row in map(list, alpha)])
    return alpha, counts


def jacobian(directions: np.ndarray, alpha: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``J (C, m d)``: column ``(i, k)`` is ``sym(w̄_i^{⊗(l-1)} ⊗ e_k)`` in the basis ``E_α``.

    ``sym(w̄^{⊗(l-1)} ⊗ e_k)[α] = (1/l) Σ_p [α_p = k] Π_{q≠p} w̄[α_q]``.

    Parameters
    ----------
    directions : (m, d) array of unit rows; alpha : (C, l) int array; counts : (C,) array
    """
    m, d = directions.shape
    C, order = alpha.shape
    J = np.zeros((C, m, d))
    rows = np.arange(C)
    factors = directions[:, alpha]  # (m, C, l): w̄_i[α_q]
    for p in range(order):
        others = np.prod(np.delete(factors, p, axis=2), axis=2)  # (m, C)
        J[rows, :, alpha[:, p]] += others.T / order  # (row, column α_p) pairs are distinct for each p
    J *= np.sqrt(counts)[:, None, None]
    return J.reshape(C, m * d)


def coordinates(target: object, alpha: np.ndarray, counts: np.ndarray) -> np.ndarray | None:
    """``t_α = N_α^{1/2} T[α] (C,)`` for a SymCP or dense target; None for other kinds (moments)."""
    if isinstance(target, SymCP):
        values = np.prod(target.vectors[:, alpha], axis=2).T @ target.weights  # (C,)
    elif isinstance(target, DenseSymTensor):
        values = target.array[tuple(alpha.T)]
    else:
        return None
    return np.sqrt(counts) * values


def lstsq_project(directions: np.ndarray, target: object) -> tuple[np.ndarray, float, int] | None:
    """``U (m, d)`` minimizing ``‖T* - A U‖``, the relative residual, and the numerical rank of ``J``.

    None when the target has no coordinates here or ``J`` exceeds :data:`DENSE_LIMIT`.
    """
    from scipy.linalg import lstsq

    m, d = directions.shape
    order = target.order  # type: ignore[attr-defined]
    if math.comb(d + order - 1, order) * m * d > DENSE_LIMIT:
        return None
    alpha, counts = multi_indices(d, order)
    t = coordinates(target, alpha, counts)
    if t is None:
        return None
    J = jacobian(directions, alpha, counts)
    # a generic square J has cond ~1e5 here; an exception's missing direction sits at rounding (~1e-15)
    x, _, rank, _ = lstsq(J, t, cond=RANK_CUTOFF, lapack_driver="gelsy", check_finite=False)
    residual = float(np.linalg.norm(t - J @ x) / np.linalg.norm(t))
    return x.reshape(m, d), residual, int(rank)
