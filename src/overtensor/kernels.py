"""Batched contraction kernels for symmetric tensors.

Every kernel takes a leading batch shape ``...`` that broadcasts, so one call
can serve ``B`` independent problems stacked as ``(B, m, d)`` arrays. Nothing
here forms a ``d^l`` array for a factored tensor.

A *target operator* is anything with ``order``, ``contract(X)`` and
``norm_sq()``; it is the only view of the target that the objective and the
solvers need:

- ``contract(X)``: ``T(x_i^{⊗(l-1)}, ·)`` for each row ``x_i``,
  ``(..., m, d) -> (..., m, d)``;
- ``norm_sq()``: ``‖T‖²_F``, shape ``(...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ._array import Array, array_namespace, row_dot

__all__ = ["TargetOp", "FactoredOp", "DenseOp", "ShiftedOp", "factored_contract", "dense_contract"]


class TargetOp(Protocol):
    """What the objective needs to know about a target tensor."""

    order: int

    def contract(self, X: Array) -> Array: ...

    def norm_sq(self) -> Array: ...


def factored_contract(weights: Array, vectors: Array, X: Array, order: int) -> Array:
    """``Σ_k λ_k <v_k, x_i>^{l-1} v_k`` for every row ``x_i`` of ``X``.

    Parameters
    ----------
    weights : (..., n) array
    vectors : (..., n, d) array
    X : (..., m, d) array
    order : int, the order ``l``

    Returns
    -------
    (..., m, d) array. Cost ``O(m n d)``: two matrix products.
    """
    C = X @ vectors.mT  # (..., m, n)
    return (weights[..., None, :] * C ** (order - 1)) @ vectors


def dense_contract(T: Array, X: Array, order: int) -> Array:
    """``T(x_i^{⊗(l-1)}, ·)`` for every row of ``X`` and a dense symmetric ``T``.

    Parameters
    ----------
    T : (..., d, ..., d) array with ``order`` trailing axes of length ``d``
    X : (..., m, d) array

    Returns
    -------
    (..., m, d) array. Cost ``O(m d^l)``: one matrix product contracts the first
    mode, then ``l - 2`` row-wise contractions, each ``d`` times smaller.
    """
    xp = array_namespace(T, X)
    d = X.shape[-1]
    batch = tuple(T.shape[: T.ndim - order])
    Y = X @ xp.reshape(T, batch + (d, d ** (order - 1)))  # (..., m, d^{l-1})
    for _ in range(order - 2):
        rest = Y.shape[-1] // d
        Y = xp.reshape(Y, tuple(Y.shape[:-1]) + (d, rest))
        Y = xp.sum(Y * X[..., None], axis=-2)  # symmetric: any mode will do
    return Y


@dataclass(frozen=True)
class FactoredOp:
    """``Σ_k λ_k v_k^{⊗l}`` with arrays ``weights (..., n)``, ``vectors (..., n, d)``."""

    weights: Array
    vectors: Array
    order: int

    def contract(self, X: Array) -> Array:
        return factored_contract(self.weights, self.vectors, X, self.order)

    def norm_sq(self) -> Array:
        # λᵀ (V Vᵀ)^{∘l} λ, computed as Σ_k λ_k S(v_k^{⊗l})
        return row_dot(self.weights, row_dot(self.contract(self.vectors), self.vectors))

    def evaluate(self, X: Array) -> Array:
        """``S(x_i^{⊗l})`` for every row: ``(..., m, d) -> (..., m)``."""
        return row_dot(self.contract(X), X)


@dataclass(frozen=True)
class DenseOp:
    """A dense symmetric tensor ``(..., d, ..., d)`` as a target operator."""

    array: Array
    order: int

    def contract(self, X: Array) -> Array:
        return dense_contract(self.array, X, self.order)

    def norm_sq(self) -> Array:
        xp = array_namespace(self.array)
        axes = tuple(range(self.array.ndim - self.order, self.array.ndim))
        return xp.sum(self.array * self.array, axis=axes)

    def evaluate(self, X: Array) -> Array:
        return row_dot(self.contract(X), X)


@dataclass(frozen=True)
class ShiftedOp:
    """``c · T + S``: a target operator ``T`` scaled by ``c (...)``, plus a factored ``S``.

    Used for the shifted target of scaled lazy training (``T*/α + T(W_0)``)
    and for deflation (``T - Σ_k λ_k x_k^{⊗l}``). The squared norm needs the
    cross term ``<T, S> = Σ_k μ_k T(v_k^{⊗l})``, one contraction of ``T``.
    """

    base: TargetOp
    scale: Array
    shift: FactoredOp

    @property
    def order(self) -> int:
        return self.base.order

    def contract(self, X: Array) -> Array:
        return self.scale[..., None, None] * self.base.contract(X) + self.shift.contract(X)

    def norm_sq(self) -> Array:
        xp = array_namespace(self.shift.vectors)
        V = self.shift.vectors
        cross = xp.sum(self.shift.weights * row_dot(self.base.contract(V), V), axis=-1)
        return self.scale**2 * self.base.norm_sq() + 2 * self.scale * cross + self.shift.norm_sq()

    def evaluate(self, X: Array) -> Array:
        return row_dot(self.contract(X), X)
