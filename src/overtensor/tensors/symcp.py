"""Factored symmetric tensors ``S = Σ_k λ_k v_k^{⊗l}`` (symmetric CP format).

All operations go through Gram matrices or the contraction kernel; the
``d^l`` array is formed only by :meth:`SymCP.to_dense`, which refuses when it
would be too large.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import OvertensorError
from ..validation import as_float_array, at_points, check_dense_size, check_order
from .kernels import FactoredOp, row_norms

if TYPE_CHECKING:
    from .dense import DenseSymTensor

__all__ = ["SymCP"]


class SymCP:
    """A symmetric tensor of order ``l`` stored as weights and vectors.

    The arrays are copied to float64 and made read-only.

    Parameters
    ----------
    weights : (n,) array
    vectors : (n, d) array; rows need not be unit vectors
    order : int, ``l >= 2``

    Examples
    --------
    >>> import numpy as np
    >>> import overtensor as ot
    >>> S = ot.SymCP([2.0, 1.0], [[1.0, 0.0, 0.0], [0.0, 3.0, 0.0]], order=3)  # 2 e1^3 + (3 e2)^3
    >>> S
    SymCP(rank=2, dim=3, order=3)
    >>> S.shape, float(S.evaluate([1.0, 1.0, 0.0]))        # S(x, x, x) = 2 * 1 + 1 * 3^3
    ((3, 3, 3), 29.0)
    >>> bool(np.isclose(S.norm(), np.sqrt(2.0**2 + 27.0**2)))   # orthogonal components
    True
    >>> (S - S).norm() == 0, (S + S).rank                  # + concatenates components
    (True, 4)
    >>> ot.SymCP([1.0], [[1.0, 0.0]], order=1)
    Traceback (most recent call last):
        ...
    overtensor.errors.OvertensorError: ...order...
    """

    __slots__ = ("order", "vectors", "weights")

    def __init__(self, weights: ArrayLike, vectors: ArrayLike, order: int) -> None:
        order = check_order(order)
        w = as_float_array("weights", weights, 1)
        v = as_float_array("vectors", vectors, 2)
        if w.shape[0] != v.shape[0]:
            raise OvertensorError(
                f"weights {w.shape} and vectors {v.shape} disagree on the number of components"
            )
        if v.shape[1] < 1:
            raise OvertensorError(f"vectors must have dimension >= 1, got shape {v.shape}")
        self.weights: np.ndarray = w
        self.vectors: np.ndarray = v
        self.order: int = order

    # -- shape ---------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def rank(self) -> int:
        """Number of stored components (an upper bound on the true rank)."""
        return self.vectors.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dim,) * self.order

    def __repr__(self) -> str:
        return f"SymCP(rank={self.rank}, dim={self.dim}, order={self.order})"

    # -- canonical form ------------------------------------------------------
    def normalize(self) -> SymCP:
        """Same tensor with unit vectors; zero components dropped.

        Examples
        --------
        >>> import overtensor as ot
        >>> S = ot.SymCP([2.0, 5.0], [[0.0, 3.0], [0.0, 0.0]], order=3)
        >>> N = S.normalize()
        >>> N.rank, N.weights.tolist(), N.vectors.tolist()  # 2 (3 e2)^3 = 54 e2^3
        (1, [54.0], [[0.0, 1.0]])
        >>> ot.residual_norm(N, S) < 1e-12
        True

        For odd order a negative weight is a flipped vector, so every weight
        of the result is positive; for even order signs stay on the weights.
        """
        V = self.vectors
        norms = row_norms(V)
        keep = (norms > 0) & (self.weights != 0)
        if keep.all():  # the usual case: no boolean indexing (a copy each)
            v, w = V / norms[:, None], self.weights * norms**self.order
        else:
            v, w = V[keep] / norms[keep, None], self.weights[keep] * norms[keep] ** self.order
        if self.order % 2 == 1:
            v = v * np.sign(w)[:, None]
            w = np.abs(w)
        return SymCP(w, v, self.order)

    # -- algebra -------------------------------------------------------------
    def _check_compatible(self, other: SymCP | DenseSymTensor) -> None:
        if other.order != self.order or other.dim != self.dim:
            raise OvertensorError(
                f"tensors differ in shape: order {self.order}, dim {self.dim} "
                f"vs order {other.order}, dim {other.dim}"
            )

    def __neg__(self) -> SymCP:
        return SymCP(-self.weights, self.vectors, self.order)

    def __add__(self, other: SymCP) -> SymCP:
        """Concatenation of components: the sum of the two tensors."""
        if not isinstance(other, SymCP):
            return NotImplemented
        self._check_compatible(other)
        return SymCP(
            np.concatenate([self.weights, other.weights]),
            np.concatenate([self.vectors, other.vectors]),
            self.order,
        )

    def __sub__(self, other: SymCP) -> SymCP:
        if not isinstance(other, SymCP):
            return NotImplemented
        return self + (-other)

    def scaled(self, factor: float) -> SymCP:
        return SymCP(factor * self.weights, self.vectors, self.order)

    def inner(self, other: SymCP | DenseSymTensor) -> float:
        """Frobenius inner product: ``λᵀ (V V'ᵀ)^{∘l} λ'`` for two factored tensors."""
        self._check_compatible(other)
        if isinstance(other, SymCP):
            gram = (self.vectors @ other.vectors.T) ** self.order
            return float(self.weights @ gram @ other.weights)
        return float(self.weights @ other.evaluate(self.vectors))

    def norm(self) -> float:
        """Frobenius norm ``sqrt(λᵀ (V Vᵀ)^{∘l} λ)``."""
        return float(np.sqrt(max(self.inner(self), 0.0)))

    def distance(self, other: SymCP | DenseSymTensor) -> float:
        """Frobenius distance ``‖S - other‖``."""
        self._check_compatible(other)
        if isinstance(other, SymCP):
            return (self - other).norm()
        sq = self.inner(self) - 2 * self.inner(other) + other.norm() ** 2
        return float(np.sqrt(max(sq, 0.0)))

    # -- contractions --------------------------------------------------------
    @property
    def op(self) -> FactoredOp:
        """The target operator used by the objective and the solvers."""
        return FactoredOp(self.weights, self.vectors, self.order)

    def evaluate(self, X: object) -> np.ndarray:
        """``S(x^{⊗l}) = Σ_k λ_k <v_k, x>^l``.

        ``X`` is one point ``(d,)`` or rows ``(m, d)``; the result has shape ``X.shape[:-1]``:
        a 0-d array for one point (``float()`` of it is the number), ``(m,)`` for rows.
        """
        return at_points(X, self.dim, self.op.evaluate)

    def contract(self, X: object) -> np.ndarray:
        """``S(x^{⊗(l-1)}, ·)`` for one point ``(d,)`` or all rows of ``X (m, d)``."""
        return at_points(X, self.dim, self.op.contract)

    def to_tensorly(self) -> Any:
        """This tensor as a TensorLy ``CPTensor`` (weights, ``l`` equal factors ``V^T (d, n)``).

        Examples
        --------
        >>> import numpy as np
        >>> import overtensor as ot
        >>> S = ot.make_target(dim=5, rank=2, order=3, seed=0)
        >>> cp = S.to_tensorly()
        >>> len(cp.factors), cp.factors[0].shape
        (3, (5, 2))
        >>> back = ot.SymCP.from_tensorly(cp)
        >>> ot.residual_norm(back, S) < 1e-12, np.allclose(cp.to_tensor(), S.to_dense())
        (True, True)
        """
        from .convert import to_tensorly

        return to_tensorly(self)

    @classmethod
    def from_tensorly(cls, cp: Any) -> SymCP:
        """The ``SymCP`` of a TensorLy ``CPTensor`` whose factors agree up to sign and scale."""
        from .convert import symcp_from_factors

        return symcp_from_factors(cp.weights, cp.factors)

    def to_dense(self) -> np.ndarray:
        """The full ``(d,)*l`` array; refuses when it would be too large.

        Examples
        --------
        >>> import numpy as np
        >>> import overtensor as ot
        >>> S = ot.SymCP([2.0], [[1.0, 1.0]], order=3)        # 2 (e1 + e2)^3
        >>> A = S.to_dense()
        >>> A.shape, float(A[0, 1, 1]), float(A[1, 1, 1])
        ((2, 2, 2), 2.0, 2.0)
        >>> bool(np.isclose(np.linalg.norm(A), S.norm()))
        True
        >>> ot.make_target(dim=2000, rank=1, order=4).to_dense()
        Traceback (most recent call last):
            ...
        overtensor.errors.OvertensorError: ...
        """
        check_dense_size(self.dim, self.order)
        out = np.zeros(self.shape)
        for lam, v in zip(self.weights, self.vectors):
            outer = v
            for _ in range(self.order - 1):
                outer = np.multiply.outer(outer, v)
            out += lam * outer
        return out
