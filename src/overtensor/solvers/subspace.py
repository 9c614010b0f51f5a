r"""Gradient descent on a factored target in the span it can never leave.

For a factored target ``T* = Σ_j c_j a_j^{⊗l}`` every gradient row is a combination of
the rows of ``W`` and of ``A`` (``solvers/step.py``: ``∇_{w_i} L`` is a sum of terms
``w_k`` and ``a_j``, also with a regularizer, a signed or a plain model). So from ``W_0``
the iterates stay in ``V = rowspan([W_0; A])``, of dimension ``k <= m + r``, for ever:
with ``Q (k, d)`` an orthonormal basis of ``V``, the run on the coordinates
``W' = W Qᵀ (m, k)`` against the target ``Σ_j c_j (Q a_j)^{⊗l}`` is the same run,
``W_t = W'_t Q``, with the same losses, errors and masses (inner products are kept), at
``O(m (m + r) k)`` a step instead of ``O(m (m + r) d)``. Only rounding differs
(``tests/test_subspace.py``). Cost: one thin QR of ``[W_0; A]ᵀ``, ``O(d k²)``, about one step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..backend import Array, to_numpy
from ..tensors.kernels import FactoredOp
from .problem import Problem

__all__ = ["SPAN_FRACTION", "Span", "span_of"]

#: Run in the span when ``m + r <= SPAN_FRACTION · d`` (0 never): below that the step is at
#: least twice cheaper there, and the QR costs about one step.
SPAN_FRACTION = 0.5


@dataclass(frozen=True)
class Span:
    """An orthonormal basis ``Q (B, k, d)`` of each run's span, and the target seen in it.

    basis : (B, k, d) array with orthonormal rows
    op : FactoredOp with vectors ``A Qᵀ (B, r, k)``; its squared norm is the original one
    (the rows of ``A`` lie in the span), up to rounding
    """

    basis: np.ndarray
    op: FactoredOp

    def reduce(self, W: np.ndarray) -> np.ndarray:
        """``W Qᵀ``: ``(B, m, d) -> (B, m, k)``."""
        return W @ np.swapaxes(self.basis, -1, -2)

    def lift(self, W: np.ndarray) -> np.ndarray:
        """``W' Q``: ``(B, m, k) -> (B, m, d)``."""
        return W @ self.basis

    def lift_observer(self, observe: Callable[[int, Array], Mapping[str, float]] | None
                      ) -> Callable[[int, Array], Mapping[str, float]] | None:
        """An ``observe(b, W'_b)`` hook that hands ``observe`` the lifted ``W'_b Q_b (m, d)``."""
        if observe is None:
            return None
        basis = self.basis

        def lifted(b: int, W: Array) -> Mapping[str, float]:
            return observe(b, to_numpy(W).astype(np.float64) @ basis[b])

        return lifted


def span_of(problem: Problem, W0: np.ndarray) -> Span | None:
    """The :class:`Span` of ``[W_0; A]`` for each run, or None where it does not pay.

    Parameters
    ----------
    problem : a batch with a factored target (any other gives None)
    W0 : (B, m, d) array, the starting parameters
    """
    op = problem.op
    if not isinstance(op, FactoredOp):
        return None
    m, r, d = W0.shape[-2], op.vectors.shape[-2], W0.shape[-1]
    if m + r > SPAN_FRACTION * d:
        return None
    # Householder QR: Q has orthonormal columns and spans every column, whatever their rank
    Q, _ = np.linalg.qr(np.swapaxes(np.concatenate([W0, op.vectors], axis=-2), -1, -2))  # (B, d, k)
    basis = np.ascontiguousarray(np.swapaxes(Q, -1, -2))  # (B, k, d)
    return Span(basis, FactoredOp(op.weights, op.vectors @ Q, op.order))
