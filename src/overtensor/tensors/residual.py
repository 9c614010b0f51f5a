r"""``‖S - T*‖`` without the difference of squares.

The error formula the solvers use, ``‖S‖² - 2<S, T*> + ‖T*‖²``, subtracts numbers
of size ``‖T*‖²``: its rounding error is about ``eps ‖T*‖²``, so it resolves
relative errors only down to ``sqrt(eps)`` (``1e-8`` in float64) and reads 0 below.
:func:`residual_norm` forms the difference before squaring:

- dense target: the dense residual ``S - T*`` explicitly, ``O(n d^l)`` for ``n``
  components (the same as one contraction of the target); rounding about
  ``eps ‖T*‖`` on the norm;
- factored target ``T* = Σ_j c_j a_j^{⊗l}``: both tensors written as
  ``Σ_p σ_p x_p^{⊗l}`` (``σ_p = ±1``), each model component paired with its most
  aligned target component of equal sign (a target component shared by ``k`` model
  components, e.g. duplicates, is split in ``k`` slices ``(t_q^{1/l} y)^{⊗l}``,
  ``Σ_q t_q = 1``, in proportion to their masses), and each pair's difference telescoped,

      x^{⊗l} - y^{⊗l} = Σ_{k=0}^{l-1} x^{⊗k} ⊗ (x - y) ⊗ y^{⊗(l-1-k)},

  so that ``R = Σ_q c_q u_{q,1} ⊗ ... ⊗ u_{q,l}`` (non-symmetric rank-one terms) and
  ``‖R‖² = Σ_{q,q'} c_q c_{q'} Π_s <u_{q,s}, u_{q',s}>``. The identity holds for any
  pairing; with a good one every product holds a factor ``x - y`` per side, so the
  terms are of the size of ``‖R‖²`` itself and the sum does not cancel: the relative
  rounding error of ``‖R‖`` is a few ``eps`` times the number of terms, not
  ``sqrt(eps) ‖T*‖/‖R‖``. Cost ``O(l³ n² d)`` for ``n`` components in all.
"""

from __future__ import annotations

import numpy as np

from ..errors import OvertensorError
from .dense import DenseSymTensor, Tensor
from .symcp import SymCP

#: Largest ``d^l`` for which a factored residual that the telescoped sum cannot resolve is formed densely.
DENSE_FALLBACK = 2**22

__all__ = ["residual_norm", "relative_residual", "signed_factors", "dense_array", "dense_from_factors"]


def signed_factors(tensor: SymCP) -> tuple[np.ndarray, np.ndarray]:
    """``(σ, X)`` with ``tensor = Σ_p σ_p x_p^{⊗l}``.

    ``x_p = |λ_p|^{1/l} v_p``; for odd ``l`` the sign goes into the vector
    (``σ = +1``), for even ``l`` it stays in ``σ_p = sign(λ_p)``.

    Returns
    -------
    sigma : (n,) array of ±1; X : (n, d) array
    """
    l = tensor.order
    lam, V = tensor.weights, tensor.vectors
    if l % 2 == 1:
        return np.ones(lam.shape), (np.sign(lam) * np.abs(lam) ** (1.0 / l))[:, None] * V
    return np.where(lam < 0, -1.0, 1.0), (np.abs(lam) ** (1.0 / l))[:, None] * V


def dense_array(tensor: SymCP) -> np.ndarray:
    """``Σ_p λ_p v_p^{⊗l}`` as a ``(d,)*l`` array: ``(λ ∘ V)ᵀ (V^{⊙(l-1)})``, ``O(n d^l)``.

    ``V^{⊙(l-1)}`` is the row-wise Khatri–Rao power ``(n, d^{l-1})``; no ``(n, d^l)`` temporary.
    """
    return dense_from_factors(tensor.weights, tensor.vectors, tensor.order)


def dense_from_factors(weights: np.ndarray, vectors: np.ndarray, order: int) -> np.ndarray:
    """:func:`dense_array` of ``Σ_p λ_p v_p^{⊗l}`` from its arrays ``weights (n,)``, ``vectors (n, d)``, unchecked.

    For callers that hold finite arrays already (an optimizer's iterate), where building
    and validating a :class:`SymCP` costs as much as the product itself at small ``n d^l``.
    """
    n, d = vectors.shape
    K = vectors
    for _ in range(order - 2):
        K = (K[:, :, None] * vectors[:, None, :]).reshape(n, -1)
    return ((weights[:, None] * vectors).T @ K).reshape((d,) * order)


def _pair(sx: np.ndarray, X: np.ndarray, sy: np.ndarray, Y: np.ndarray,
          even: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair each model row with its most aligned target row of equal sign ``σ``.

    Returns
    -------
    rows, cols : (q,) int arrays, model row ``rows[k]`` goes with target row ``cols[k]``
        (rows with no positive score stay unpaired)
    signs : (q,) array, the sign of their cosine (for even ``l``, ``-y`` has the same ``y^{⊗l}``)
    """
    def unit(A: np.ndarray) -> np.ndarray:
        n = np.linalg.norm(A, axis=1, keepdims=True)
        return A / np.where(n > 0, n, 1.0)

    C = unit(X) @ unit(Y).T
    score = np.where(sx[:, None] == sy[None, :], np.abs(C) if even else C, 0.0)
    cols = np.argmax(score, axis=1) if Y.shape[0] else np.zeros(X.shape[0], dtype=int)
    rows = np.flatnonzero(score[np.arange(X.shape[0]), cols] > 0) if Y.shape[0] else np.zeros(0, dtype=int)
    cols = cols[rows]
    return rows, cols, np.sign(C[rows, cols])


def _telescoped_sq(model: SymCP, target: SymCP) -> tuple[float, float]:
    """``‖model - target‖²`` by the telescoped pairing of the module docstring, and ``Σ |terms|``."""
    l = model.order
    sx, X = signed_factors(model)
    sy, Y = signed_factors(target)
    rows, cols, sign = _pair(sx, X, sy, Y, even=l % 2 == 0)
    # model row k takes the share t_k of its target row's tensor, t_k ∝ ‖x_k‖^l, shares summing to 1
    # over the row's partners: Σ_k (t_k^{1/l} y)^{⊗l} = y^{⊗l}, and split duplicates stay close to theirs
    mass = np.linalg.norm(X[rows], axis=1) ** l
    total = np.bincount(cols, mass, minlength=Y.shape[0])
    share = mass / np.where(total[cols] > 0, total[cols], 1.0)
    Xp = X[rows]
    Yp = (share ** (1.0 / l) * (sign if l % 2 == 0 else 1.0))[:, None] * Y[cols]
    lone_x = np.setdiff1d(np.arange(X.shape[0]), rows)
    lone_y = np.setdiff1d(np.arange(Y.shape[0]), cols)
    slots = []  # slots[s] : (q, d), the s-th factor of every rank-one term
    for s in range(l):
        paired = [Xp if s < k else (Xp - Yp if s == k else Yp) for k in range(l)]
        slots.append(np.concatenate(paired + [X[lone_x], Y[lone_y]]))
    coef = np.concatenate([np.tile(sx[rows], l), sx[lone_x], -sy[lone_y]])
    prod = np.ones((coef.size, coef.size))
    for U in slots:
        prod *= U @ U.T
    terms = coef[:, None] * prod * coef[None, :]
    return float(np.sum(terms)), float(np.sum(np.abs(terms)))


def residual_norm(model: SymCP, target: Tensor) -> float:
    """``‖model - target‖_F`` computed without cancellation (module docstring).

    Parameters
    ----------
    model : SymCP, any weights and vectors
    target : SymCP or DenseSymTensor of the same order and dimension

    Examples
    --------
    >>> import numpy as np
    >>> import overtensor as ot
    >>> target = ot.SymCP([1.0], [[1.0, 0.0]], 3)
    >>> model = ot.SymCP([1.0 + 1e-10], [[1.0, 0.0]], 3)   # ‖model - target‖ = 1e-10 exactly
    >>> round(ot.residual_norm(model, target) / 1e-10, 3)  # ‖S‖² - 2<S, T> + ‖T‖² cannot resolve it
    1.0
    >>> dense = ot.DenseSymTensor(target.to_dense())
    >>> round(ot.residual_norm(model, dense) / 1e-10, 3)   # the dense residual, formed entry by entry
    1.0
    """
    if not isinstance(model, SymCP):
        raise OvertensorError(f"residual_norm needs a factored model (SymCP), got {type(model).__name__}")
    model._check_compatible(target)
    if isinstance(target, DenseSymTensor):
        return float(np.linalg.norm((dense_array(model) - target.array).ravel()))
    if not isinstance(target, SymCP):
        raise OvertensorError(f"target must be a SymCP or DenseSymTensor, got {type(target).__name__}")
    sq, size = _telescoped_sq(model, target)
    # the terms round by about (d + l) eps each and their sum by log(q²) eps: ~100 eps Σ|terms| in
    # all. Below 1e4 eps Σ|terms| (model components far from every target component, e.g. pairs
    # that cancel each other) sq has fewer than ~2 correct digits, and a dense residual is honest
    if sq <= 1e4 * np.finfo(float).eps * size and target.dim**target.order <= DENSE_FALLBACK:
        return float(np.linalg.norm((dense_array(model) - dense_array(target)).ravel()))
    return float(np.sqrt(max(sq, 0.0)))


def relative_residual(model: SymCP, target: Tensor) -> float:
    """``‖model - target‖ / ‖target‖`` with :func:`residual_norm`."""
    return residual_norm(model, target) / target.norm()
