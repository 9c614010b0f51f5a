"""What ``decompose`` accepts as a target, and the way to and from TensorLy.

:func:`as_target` turns a user's object into one of the tensor types:

- a ``SymCP``, ``DenseSymTensor``, moment target or a sum of targets, as it is;
- a NumPy array of shape ``(d,)*l``: a ``DenseSymTensor`` (symmetry checked);
- a TensorLy ``CPTensor``, or a ``(weights, factors)`` pair with a list of ``l``
  factor matrices ``(d, r)``: a ``SymCP``, if every component's ``l`` factor
  columns are parallel (equal up to sign and scale);
- a ``(weights, vectors, order)`` triple: ``SymCP(weights, vectors, order)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .dense import DenseSymTensor
from ..errors import OvertensorError
from .symcp import SymCP

__all__ = ["as_target", "symcp_from_factors", "to_tensorly"]

#: Factor columns count as parallel when ``1 - |cos| <= PARALLEL_TOL`` (rounding of a
#: normalized dot product of d entries is ~d eps; 1e-8 leaves room for d up to 10^6).
PARALLEL_TOL = 1e-8


def as_target(obj: Any) -> Any:
    """``obj`` as a target every method accepts; one-line ``OvertensorError`` otherwise.

    Anything else (the tensor types) is returned as it is, for ``make_problem`` to check.
    """
    if isinstance(obj, np.ndarray):
        return DenseSymTensor(obj)
    if hasattr(obj, "factors") and hasattr(obj, "weights"):  # a TensorLy CPTensor
        return symcp_from_factors(obj.weights, obj.factors)
    if isinstance(obj, tuple) and len(obj) == 3:
        weights, vectors, order = obj
        return SymCP(weights, vectors, order)
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], (list, tuple)):
        return symcp_from_factors(obj[0], obj[1])
    if isinstance(obj, tuple):
        raise OvertensorError(f"a target tuple is (weights, [factor, ...]) or (weights, vectors, order), "
                              f"got a tuple of {len(obj)}")
    return obj


def symcp_from_factors(weights: Any, factors: Sequence[Any]) -> SymCP:
    """The ``SymCP`` of a CP tensor ``Σ_j w_j u_{1j} ⊗ ... ⊗ u_{lj}`` whose factors agree.

    Component ``j`` becomes ``c_j a_j^{⊗l}`` with ``a_j = u_{1j} / ‖u_{1j}‖`` and
    ``c_j = w_j Π_k ‖u_{kj}‖ sign(<u_{kj}, a_j>)``.

    Parameters
    ----------
    weights : (r,) array, or None for ones
    factors : ``l >= 2`` arrays ``(d, r)``; column ``j`` of each must be parallel to
        column ``j`` of the first (sign and scale may differ)
    """
    mats = [np.asarray(f, dtype=np.float64) for f in factors]
    if len(mats) < 2 or any(f.ndim != 2 or f.shape != mats[0].shape for f in mats):
        raise OvertensorError(f"a CP tensor needs >= 2 factor matrices of one shape (d, r), got shapes "
                              f"{[f.shape for f in mats]}")
    r = mats[0].shape[1]
    w = np.ones(r) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (r,):
        raise OvertensorError(f"CP weights of shape {w.shape} do not fit factors of rank {r}")
    norms = np.stack([np.linalg.norm(f, axis=0) for f in mats])  # (l, r)
    first = mats[0] / np.where(norms[0] > 0, norms[0], 1.0)
    coefficient = w * norms[0]
    for k, f in enumerate(mats[1:], start=1):
        cos = np.sum(first * f, axis=0) / np.where(norms[k] > 0, norms[k], 1.0)
        bad = np.flatnonzero((norms[k] > 0) & (norms[0] > 0) & (1 - np.abs(cos) > PARALLEL_TOL))
        if bad.size:
            j = int(bad[0])
            raise OvertensorError(f"the CP tensor is not symmetric: column {j} of factor {k} has |cos| "
                                  f"{abs(cos[j]):.6g} with column {j} of factor 0 (need 1 to {PARALLEL_TOL:g})")
        coefficient = coefficient * norms[k] * np.where(cos < 0, -1.0, 1.0)
    return SymCP(coefficient, first.T, len(mats))


def to_tensorly(tensor: SymCP) -> Any:
    """``tensor`` as a TensorLy ``CPTensor`` with ``l`` equal factors ``V^T (d, n)``."""
    from tensorly.cp_tensor import CPTensor

    factor = np.array(tensor.vectors.T)
    return CPTensor((np.array(tensor.weights), [factor.copy() for _ in range(tensor.order)]))
