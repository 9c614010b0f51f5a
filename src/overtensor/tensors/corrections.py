r"""Structured moment corrections and sums of target terms (DESIGN.md §8).

``S_a = Σ_i sym(a ⊗ e_i ⊗ e_i)`` (order 3, the sum over its three placements of ``a``)::

    S_a(x, y, z) = (a·x)(y·z) + (a·y)(x·z) + (a·z)(x·y),   S_a(x, x, ·) = 2 (a·x) x + ‖x‖² a

``G = Σ_{i,j} sym(e_i ⊗ e_i ⊗ e_j ⊗ e_j)`` (order 4, the sum over its three pairings)::

    G(x, y, z, w) = (x·y)(z·w) + (x·z)(y·w) + (x·w)(y·z),   G(x, x, x, ·) = 3 ‖x‖² x

Inner products in closed form, from the six cross pairs of the three
placements (``d`` = dimension, ``D`` a dense symmetric tensor):

    <S_a, S_b> = (3d + 6) a·b        <S_a, D> = 3 Σ_i a_i Σ_j D_ijj        <S_a, v^{⊗3}> = 3 (a·v) ‖v‖²
    <G, G>     = 3d² + 6d            <G, D>   = 3 Σ_{i,j} D_iijj           <G, v^{⊗4}>   = 3 ‖v‖⁴

and with a moment ``(1/n) Σ_k x_k^{⊗l}`` one pass, ``(1/n) Σ_k S(x_k^{⊗l})``.
:class:`TensorSum` ``Σ_k c_k T_k`` combines these with moment, factored and dense
terms into one target: its contraction is the sum of the terms', its squared
norm ``Σ_{j,k} c_j c_k <T_j, T_k>`` is computed once.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import Array, row_dot
from ..errors import OvertensorError
from ..validation import at_points, check_dense_size
from .algebra import TermAlgebra
from .dense import DenseSymTensor
from .kernels import DenseOp, FactoredOp, TargetOp
from .moment import MomentTensor
from .symcp import SymCP

__all__ = ["CorrectionS", "CorrectionG", "TensorSum", "SOp", "GOp", "SumOp", "inner", "transform"]


# -- operators (batch axis first, as every target operator) -------------------
@dataclass(frozen=True)
class SOp:
    """``S_a`` with ``a (..., d)``: ``S_a(x, x, ·) = 2 (a·x) x + ‖x‖² a``."""

    a: Array
    order: int = 3

    def contract(self, X: Array) -> Array:
        a = self.a[..., None, :]
        return 2 * row_dot(X, a)[..., None] * X + row_dot(X, X)[..., None] * a

    def norm_sq(self) -> Array:
        return (3 * self.a.shape[-1] + 6) * row_dot(self.a, self.a)

    def evaluate(self, X: Array) -> Array:
        return 3 * row_dot(X, self.a[..., None, :]) * row_dot(X, X)


@dataclass(frozen=True)
class GOp:
    """``c G`` with ``c (...)`` in dimension ``dim``: ``G(x, x, x, ·) = 3 ‖x‖² x``."""

    scale: Array
    dim: int
    order: int = 4

    def contract(self, X: Array) -> Array:
        return (3 * self.scale[..., None, None]) * row_dot(X, X)[..., None] * X

    def norm_sq(self) -> Array:
        return self.scale**2 * (3 * self.dim**2 + 6 * self.dim)

    def evaluate(self, X: Array) -> Array:
        return 3 * self.scale[..., None] * row_dot(X, X) ** 2


@dataclass(frozen=True)
class SumOp:
    """``Σ_k c_k T_k``: ``terms`` (operators), ``coefs (..., K)``, ``norms (...)`` the squared norm."""

    terms: tuple[Any, ...]
    coefs: Array
    norms: Array

    @property
    def order(self) -> int:
        return self.terms[0].order

    def contract(self, X: Array) -> Array:
        out = self.coefs[..., 0, None, None] * self.terms[0].contract(X)
        for k in range(1, len(self.terms)):
            out = out + self.coefs[..., k, None, None] * self.terms[k].contract(X)
        return out

    def norm_sq(self) -> Array:
        return self.norms

    def evaluate(self, X: Array) -> Array:
        return row_dot(self.contract(X), X)


# -- user-facing tensors ----------------------------------------------------------
class _OneRun(TermAlgebra):
    """A term that computes through its operator ``op`` of one run (batch axis of length 1):
    the corrections and :class:`TensorSum`."""

    op: Any
    order: int

    @property
    def dim(self) -> int:  # read-only in every subclass
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dim,) * self.order

    def evaluate(self, X: object) -> np.ndarray:
        """``T(x^{⊗l})`` for one point ``(d,)`` (a 0-d array) or rows ``(m, d)`` (``(m,)``)."""
        return at_points(X, self.dim, lambda rows: self.op.evaluate(rows[None])[0])

    def contract(self, X: object) -> np.ndarray:
        """``T(x^{⊗(l-1)}, ·)`` for one point ``(d,)`` or rows ``(m, d)``."""
        return at_points(X, self.dim, lambda rows: self.op.contract(rows[None])[0])


class _Correction(_OneRun):
    """A correction term; its norm comes from its operator."""

    def norm(self) -> float:
        return float(np.sqrt(self.op.norm_sq()[0]))


class CorrectionS(_Correction):
    """``S_a``, order 3, for a vector ``a (d,)`` (e.g. ``σ² S_{E[x]}`` of a Gaussian mixture)."""

    def __init__(self, a: object) -> None:
        arr = np.array(a, dtype=np.float64)
        if arr.ndim != 1 or arr.size < 1 or not np.all(np.isfinite(arr)):
            raise OvertensorError(f"a must be a finite (d,) vector, got shape {arr.shape}")
        arr.setflags(write=False)
        self.a = arr
        self.order = 3

    @property
    def dim(self) -> int:
        return self.a.shape[0]

    def __repr__(self) -> str:
        return f"CorrectionS(dim={self.dim})"

    @property
    def op(self) -> SOp:
        return SOp(self.a[None])

    def to_dense(self) -> np.ndarray:
        check_dense_size(self.dim, 3)
        eye = np.eye(self.dim)
        a = self.a
        return (np.einsum("i,jk->ijk", a, eye) + np.einsum("j,ik->ijk", a, eye)
                + np.einsum("k,ij->ijk", a, eye))



class CorrectionG(_Correction):
    """``G``, order 4, in dimension ``dim`` (e.g. the Gaussian part of a whitened fourth moment)."""

    def __init__(self, dim: int) -> None:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise OvertensorError(f"dim must be an integer >= 1, got {dim!r}")
        self._dim = int(dim)
        self.order = 4

    @property
    def dim(self) -> int:
        return self._dim

    def __repr__(self) -> str:
        return f"CorrectionG(dim={self.dim})"

    @property
    def op(self) -> GOp:
        return GOp(np.ones(1), self.dim)

    def to_dense(self) -> np.ndarray:
        check_dense_size(self.dim, 4)
        e = np.eye(self.dim)
        return np.einsum("ij,kl->ijkl", e, e) + np.einsum("ik,jl->ijkl", e, e) + np.einsum("il,jk->ijkl", e, e)



Term = Any  # SymCP, DenseSymTensor, MomentTensor, CorrectionS or CorrectionG
_TERM_TYPES = (SymCP, DenseSymTensor, MomentTensor, CorrectionS, CorrectionG)


class TensorSum(_OneRun):
    """``Σ_k c_k T_k`` of terms of one order and dimension, e.g. ``M3 - σ² S_{m1}``.

    Parameters
    ----------
    terms : sequence of SymCP, DenseSymTensor, MomentTensor, CorrectionS, CorrectionG
        (nested sums are flattened)
    coefs : sequence of ``K`` finite numbers
    """

    def __init__(self, terms: Sequence[Term], coefs: Sequence[float]) -> None:
        flat_terms: list[Term] = []
        flat_coefs: list[float] = []
        if len(terms) != len(coefs) or not terms:
            raise OvertensorError(f"a sum needs one coefficient per term, got {len(terms)} terms, {len(coefs)} coefs")
        for t, c in zip(terms, coefs):
            if not np.isfinite(c):
                raise OvertensorError(f"coefficients must be finite, got {c!r}")
            if isinstance(t, TensorSum):
                flat_terms += t.terms
                flat_coefs += [float(c) * ck for ck in t.coefs]
            elif isinstance(t, _TERM_TYPES):
                flat_terms.append(t)
                flat_coefs.append(float(c))
            else:
                raise OvertensorError(f"cannot add a {type(t).__name__} to a tensor sum")
        first = flat_terms[0]
        for t in flat_terms:
            if t.order != first.order or t.dim != first.dim:
                raise OvertensorError(f"terms differ in shape: {first!r} vs {t!r}")
        self.terms: tuple[Term, ...] = tuple(flat_terms)
        self.coefs: tuple[float, ...] = tuple(flat_coefs)
        self.order: int = first.order

    @property
    def dim(self) -> int:
        return self.terms[0].dim

    def __repr__(self) -> str:
        return f"TensorSum({' + '.join(f'{c:g}·{t!r}' for c, t in zip(self.coefs, self.terms))})"

    def norm_sq(self) -> float:
        """``Σ_{j,k} c_j c_k <T_j, T_k>``: ``K (K + 1) / 2`` inner products, each closed-form or one pass."""
        total = 0.0
        for j, k in itertools.combinations_with_replacement(range(len(self.terms)), 2):
            total += (1 if j == k else 2) * self.coefs[j] * self.coefs[k] * inner(self.terms[j], self.terms[k])
        return total

    def norm(self) -> float:
        return float(np.sqrt(max(self.norm_sq(), 0.0)))

    @property
    def op(self) -> SumOp:
        """The operator of one run (batch axis 1); computes ``‖T‖²`` once."""
        if "_op" not in self.__dict__:
            terms = tuple(_batched_op(t) for t in self.terms)
            self.__dict__["_op"] = SumOp(terms, np.array([self.coefs]), np.array([self.norm_sq()]))
        return self.__dict__["_op"]

    def to_dense(self) -> np.ndarray:
        return sum(c * t.to_dense() for c, t in zip(self.coefs, self.terms))


def _batched_op(t: Term) -> TargetOp:
    """A term's operator with a leading batch axis of 1."""
    if isinstance(t, SymCP):
        return FactoredOp(t.weights[None], t.vectors[None], t.order)
    if isinstance(t, DenseSymTensor):
        return DenseOp(t.array[None], t.order)
    return t.op  # MomentTensor, CorrectionS, CorrectionG: batch axis 1 already


# -- inner products -----------------------------------------------------------------
def inner(a: Term, b: Term) -> float:
    """Frobenius ``<a, b>`` of any two terms (or sums) of one shape: closed forms, or one pass over samples."""
    if a.order != b.order or a.dim != b.dim:
        raise OvertensorError(f"tensors differ in shape: {a!r} vs {b!r}")
    for x, y in ((a, b), (b, a)):
        if isinstance(x, TensorSum):
            return float(sum(c * inner(t, y) for c, t in zip(x.coefs, x.terms)))
    for x, y in ((a, b), (b, a)):
        if isinstance(x, SymCP):  # Σ_k λ_k y(v_k^{⊗l})
            return float(x.weights @ np.asarray(y.evaluate(x.vectors)))
    for x, y in ((a, b), (b, a)):
        if isinstance(x, MomentTensor):
            return x.inner(y)
    return _closed_form(a, b)


def _closed_form(a: Term, b: Term) -> float:
    """``<a, b>`` among dense tensors, ``S`` and ``G`` (formulas in the module docstring)."""
    d = a.dim
    if isinstance(a, DenseSymTensor) and isinstance(b, DenseSymTensor):
        return float(np.sum(a.array * b.array))
    if isinstance(a, CorrectionS) and isinstance(b, CorrectionS):
        return float((3 * d + 6) * (a.a @ b.a))
    if isinstance(a, CorrectionG) and isinstance(b, CorrectionG):
        return float(3 * d * d + 6 * d)
    s, dense = (a, b) if isinstance(b, DenseSymTensor) else (b, a)
    if isinstance(s, CorrectionS):
        return float(3 * s.a @ np.einsum("ijj->i", dense.array))
    return float(3 * np.einsum("iijj->", dense.array))


# -- whitening -------------------------------------------------------------------
def transform(target: Term, W: object, center: object = None) -> Term:
    """``T(W ·, …, W ·)`` for ``W (d, k)``: a tensor of dimension ``k`` of the same kind where one exists.

    SymCP: vectors ``V W``; MomentTensor: the moment of ``(x - center) W`` (the
    only type that takes ``center``); DenseSymTensor: each mode contracted with
    ``W``; a sum: term by term; ``S_a`` and ``G`` (not closed under ``W``) go
    dense, so only at small ``d``.
    """
    A = np.array(W, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != target.dim or not np.all(np.isfinite(A)):
        raise OvertensorError(f"W must be a finite ({target.dim}, k) array, got shape {A.shape}")
    if center is not None and not isinstance(target, MomentTensor):
        raise OvertensorError("center applies to a moment target only")
    if isinstance(target, MomentTensor):
        return target.transformed(A, center)
    if isinstance(target, SymCP):
        return SymCP(target.weights, target.vectors @ A, target.order)
    if isinstance(target, TensorSum):
        return TensorSum([transform(t, A) for t in target.terms], target.coefs)
    dense = target.to_dense()
    for _ in range(target.order):  # contract the leading mode, append the new one last
        dense = np.tensordot(dense, A, axes=(0, 0))
    return DenseSymTensor(dense)
