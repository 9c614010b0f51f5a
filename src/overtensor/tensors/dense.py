"""Dense symmetric tensors: a user's ``(d,)*l`` array with the same operations as SymCP."""

from __future__ import annotations

from typing import Union

import numpy as np
from numpy.typing import ArrayLike

from ..errors import OvertensorError
from ..validation import at_points
from .kernels import DenseOp
from .symcp import SymCP

__all__ = ["DenseSymTensor", "Tensor", "symmetrize"]

#: Either tensor type accepted as a decomposition target.
Tensor = Union[SymCP, "DenseSymTensor"]


def symmetrize(array: np.ndarray) -> np.ndarray:
    """Average of ``array`` over all permutations of its axes."""
    import functools
    import itertools

    perms = list(itertools.permutations(range(array.ndim)))
    return functools.reduce(np.add, (np.transpose(array, p) for p in perms)) / len(perms)


class DenseSymTensor:
    """A symmetric tensor given as a full array.

    Parameters
    ----------
    array : (d,)*l array, ``l >= 2``
    rtol : float
        Allowed asymmetry, relative to the largest absolute entry. Symmetry is
        checked on the adjacent transpositions of axes, which generate all
        permutations.

    Examples
    --------
    >>> import numpy as np
    >>> import overtensor as ot
    >>> x = np.array([1.0, 2.0])
    >>> T = ot.DenseSymTensor(np.einsum("i,j,k->ijk", x, x, x))   # x^{⊗3}
    >>> T, T.shape
    (DenseSymTensor(dim=2, order=3), (2, 2, 2))
    >>> bool(np.isclose(T.evaluate([1.0, 0.0]), 1.0)), ot.residual_norm(ot.SymCP([1.0], [x], 3), T) < 1e-12
    (True, True)
    >>> ot.DenseSymTensor(np.arange(8.0).reshape(2, 2, 2))
    Traceback (most recent call last):
        ...
    overtensor.errors.OvertensorError: dense tensor of shape (2, 2, 2) is not symmetric: ...
    """

    __slots__ = ("array",)

    def __init__(self, array: ArrayLike, *, rtol: float = 1e-8) -> None:
        if np.iscomplexobj(array):
            raise OvertensorError("dense tensor must be real, got a complex array")
        try:  # C order, for the reason in _validate.as_float_array
            arr = np.array(array, dtype=np.float64, order="C")
        except (TypeError, ValueError) as exc:
            raise OvertensorError(f"dense tensor must be a real array: {exc}") from None
        if arr.ndim < 2:
            raise OvertensorError(f"dense tensor must have order >= 2, got shape {arr.shape}")
        if len(set(arr.shape)) != 1 or arr.shape[0] < 1:
            raise OvertensorError(f"dense tensor must have equal axes (d, d, ...), got shape {arr.shape}")
        buf = np.abs(arr)
        scale = float(buf.max())
        if not np.isfinite(scale):  # max propagates NaN and Inf: one pass fewer than isfinite on every entry
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise OvertensorError(f"dense tensor has {bad} non-finite (NaN or Inf) entries")
        worst = 0.0
        for k in range(arr.ndim - 1):
            perm = list(range(arr.ndim))
            perm[k], perm[k + 1] = perm[k + 1], perm[k]
            np.subtract(arr, arr.transpose(perm), out=buf)  # into one buffer: no (d,)*l temporaries
            worst = max(worst, float(np.abs(buf, out=buf).max()))
        if worst > rtol * max(scale, np.finfo(float).tiny):
            raise OvertensorError(
                f"dense tensor of shape {arr.shape} is not symmetric: largest asymmetry "
                f"{worst:.3g} (relative {worst / scale:.3g}, tolerance {rtol:g})"
            )
        arr.setflags(write=False)
        self.array: np.ndarray = arr

    @property
    def order(self) -> int:
        return self.array.ndim

    @property
    def dim(self) -> int:
        return self.array.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    def __repr__(self) -> str:
        return f"DenseSymTensor(dim={self.dim}, order={self.order})"

    @property
    def op(self) -> DenseOp:
        return DenseOp(self.array, self.order)

    def evaluate(self, X: object) -> np.ndarray:
        """``T(x^{⊗l})`` for one point ``(d,)`` (a 0-d array) or all rows of ``X (m, d)`` (``(m,)``)."""
        return at_points(X, self.dim, self.op.evaluate)

    def contract(self, X: object) -> np.ndarray:
        """``T(x^{⊗(l-1)}, ·)`` for one point ``(d,)`` or all rows of ``X (m, d)``: ``O(m d^l)``."""
        return at_points(X, self.dim, self.op.contract)

    def norm(self) -> float:
        return float(np.linalg.norm(self.array.ravel()))

    def inner(self, other: Tensor) -> float:
        if other.order != self.order or other.dim != self.dim:
            raise OvertensorError(
                f"tensors differ in shape: order {self.order}, dim {self.dim} "
                f"vs order {other.order}, dim {other.dim}"
            )
        if isinstance(other, SymCP):
            return other.inner(self)
        return float(np.sum(self.array * other.array))

    def distance(self, other: Tensor) -> float:
        dense = other.to_dense() if isinstance(other, SymCP) else other.array
        if dense.shape != self.shape:
            raise OvertensorError(f"tensors differ in shape: {self.shape} vs {dense.shape}")
        return float(np.linalg.norm((self.array - dense).ravel()))

    def to_dense(self) -> np.ndarray:
        return np.array(self.array)


