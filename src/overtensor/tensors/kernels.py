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

Operators are frozen dataclasses whose array fields carry the batch axis
first, so :func:`map_arrays` can move them to another array library or device
and take a subset of their batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, dataclass, fields, is_dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import numpy as np

from ..backend import Array, array_namespace, is_array_api_obj, matrix_transpose, row_dot

__all__ = ["TargetOp", "FactoredOp", "DenseOp", "ShiftedOp", "factored_contract", "dense_contract", "power",
           "row_norms", "map_arrays"]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Op = TypeVar("Op", bound="DataclassInstance")


class TargetOp(Protocol):
    """What the objective needs to know about a target tensor."""

    # operators are dataclasses, so that :func:`map_arrays` can rebuild them field by field
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @property
    def order(self) -> int: ...  # read-only, so the frozen operators satisfy it

    def contract(self, X: Array) -> Array: ...

    def norm_sq(self) -> Array: ...


def map_arrays(op: Op, fn: Callable[[Array], Array]) -> Op:
    """A copy of the operator (a frozen dataclass) with ``fn`` applied to each array field.

    Operators nested in fields (``ShiftedOp.base``), or in a tuple field, are mapped too. Moves an
    operator to another array library or device, or takes a subset of its
    batch (every array field has the batch axis first).
    """

    def convert(value: object) -> object:
        if is_array_api_obj(value):
            return fn(value)
        if is_dataclass(value) and not isinstance(value, type):
            return map_arrays(value, fn)
        if isinstance(value, tuple):
            return tuple(convert(v) for v in value)
        return value

    return replace(op, **{f.name: convert(getattr(op, f.name)) for f in fields(op)})


def power(G: Array, k: int) -> Array:
    """``G^{∘k}`` for an integer ``k >= 1``; may overwrite ``G``.

    ``k - 1`` in-place multiplications: a general ``pow`` costs about ten times
    a multiplication per entry, and ``G`` is the ``(m, m)`` array of the step.
    """
    if k == 1:
        return G
    if k == 2:
        G *= G
        return G
    P = G * G
    for _ in range(k - 2):
        P *= G
    return P


def row_norms(X: np.ndarray) -> np.ndarray:
    """``‖x_i‖``, ``(...)``, over the last axis of a NumPy ``X (..., n)``: ``np.linalg.norm(X, axis=-1)``'s
    arithmetic (``sqrt`` of ``add.reduce`` of the squares, the same numbers) without the wrappers
    of ``norm`` and ``np.sum``, which cost as much as the arithmetic on small arrays."""
    return np.sqrt(np.add.reduce(X * X, axis=-1))


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
    C = power(X @ matrix_transpose(vectors), order - 1)  # (..., m, n)
    return C @ (weights[..., None] * vectors)  # scaling V is an (n, d) pass, not (m, n)


def _reshape(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return x.reshape(shape)


def dense_contract(T: Array, X: Array, order: int) -> Array:
    """``T(x_i^{⊗(l-1)}, ·)`` for every row of ``X`` and a dense symmetric ``T``.

    Parameters
    ----------
    T : (..., d, ..., d) array with ``order`` trailing axes of length ``d``
    X : (..., m, d) array

    Returns
    -------
    (..., m, d) array. Cost ``O(m d^l)``: one matrix product contracts the first
    mode, then ``l - 2`` row-wise contractions (stacked vector-matrix products),
    each ``d`` times smaller.
    """
    # NumPy arrays reshape themselves: the namespace lookup and its wrapper cost a few µs a
    # call, as much as the whole contraction of a small compressed target (k̂ = 10)
    reshape = _reshape if isinstance(T, np.ndarray) and isinstance(X, np.ndarray) else \
        array_namespace(T, X).reshape
    d = X.shape[-1]
    batch = tuple(T.shape[: T.ndim - order])
    Y = X @ reshape(T, batch + (d, d ** (order - 1)))  # (..., m, d^{l-1})
    for _ in range(order - 2):
        rest = Y.shape[-1] // d
        Y = reshape(Y, tuple(Y.shape[:-1]) + (d, rest))
        Y = (X[..., None, :] @ Y)[..., 0, :]  # symmetric: any mode will do
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
