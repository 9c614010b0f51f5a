r"""One gradient step of the balanced model, arranged for the shape ``(m, d)``.

With ``n_i = ‖w_i‖``, ``s_i = n_i²``, ``w̄_i = w_i / n_i`` and the residual
``R = T(W) - T*``, the step ``W ← W - η ∇L(W)`` of :mod:`overtensor.solvers.objective` is

.. math::

    w_i ← w_i \bigl(1 - η[(2 - l) R(w̄_i^{⊗l}) + λ]\bigr) - η\, l\, n_i\, R(w̄_i^{⊗(l-1)}, ·),

    R(w̄_i^{⊗(l-1)}, ·) = Σ_k s_k G_{ik}^{l-1} w̄_k - T^*(w̄_i^{⊗(l-1)}, ·),   G = W̄ W̄ᵀ.

The gradient itself is never formed. Two arrangements compute the same
numbers (to rounding, ``tests/test_step.py``) at different costs:

``stacked`` (a factored target ``Σ_j c_j a_j^{⊗l}`` with ``m <= d``, or ``m <= 2d`` when small: :func:`arrangement`)
    Every term above is a row combination of ``S = [W; A]``, so the whole step
    is one product ``W ← M S`` with the ``(m, m + r)`` matrix
    ``M = [-η l n_i K^G_{ik} / n_k + δ_{ik} (1 - η[(2-l) R(w̄_i^{⊗l}) + λ]) | -η l n_i K^C_{ij}]``,
    ``K^G = s ∘ G^{∘(l-1)}``, ``K^C = -c ∘ C^{∘(l-1)}``, ``C = W̄ Aᵀ``, and ``W̄`` is never
    formed: ``s = diag(W Wᵀ)``, ``G = D⁻¹ (W Wᵀ) D⁻¹`` with ``D = diag(n)``. The scalars
    ``R(w̄_i^{⊗l}) = Σ_k K^G_{ik} G_{ik} + Σ_j K^C_{ij} C_{ij}`` come from the Gram matrices.
    Besides the products, one copy of ``W`` (into ``S``) passes over ``(m, d)`` arrays,
    which is what matters when ``d`` is large.
``blocked`` (every other case: ``m`` larger, or a target seen only through ``contract``)
    ``G`` is formed in blocks of rows, ``G_I = W̄_I W̄ᵀ``, so memory stays at
    ``O(BLOCK_ENTRIES + m d)`` however large ``m`` is (one full ``(m, m)`` Gram
    at ``m = 10^4`` is 800 MB). A factored target's vectors join the rows of both
    products (``[G_I | C_I] = W̄_I [W̄; A]ᵀ``, then ``K_I [σ n W; A]`` with
    ``K = [G^{∘(l-1)} | -c ∘ C^{∘(l-1)}]``), so no contraction or subtraction is
    left over ``(m, d)`` arrays; any other target enters through ``contract``.

The arrangement depends on ``(m, d)`` and the target's type only, never on the
batch size, so a batched run makes exactly the arithmetic of its single run.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any, NamedTuple, Protocol

import numpy as np
from array_api_compat import device as array_device

from ..backend import Array, matrix_transpose
from ..tensors.kernels import FactoredOp, TargetOp, power

__all__ = ["BLOCK_ENTRIES", "CARRY_ENTRIES", "SMALL_ENTRIES", "SYRK_ROWS", "Step", "StepFn", "arrangement",
           "balanced_step", "stepper"]

#: Largest ``(rows, m)`` block of the Gram matrix formed at once (32 MB in float64).
BLOCK_ENTRIES = 2**22
#: From this many entries of ``W``, the stacked step on NumPy carries ``[W; A]`` from one step to
#: the next instead of copying ``W`` into it; below, the copy costs less than the bookkeeping.
CARRY_ENTRIES = 2**15
#: Up to this many entries of ``W`` the stacked step is taken at any ``m / d`` (:func:`arrangement`):
#: 1.1-1.8x faster than the blocked one at (20, 5), (40, 10), (80, 10), (60, 20), even at (100, 20).
SMALL_ENTRIES = 2**11
#: From this many rows of ``W`` the stacked step forms the whole Gram ``S Sᵀ`` of ``S = [W; A]``
#: (one-triangle ``syrk``, 1.3-1.6x faster than a general product there) and reads its first
#: ``m`` rows; below, the product ``W Sᵀ`` of those rows alone costs less (up to 2x at ``m = 20``).
SYRK_ROWS = 48


class Step(NamedTuple):
    """The new parameters, and the Gram scalars at the old ones; leading batch shape ``...``.

    W : (..., m, d) array, after the step
    masses : (..., m) array, ``s_i`` before the step
    weights : (..., m) array, the model's weights ``σ_i s_i`` (``masses`` when unsigned)
    model_minus_target : (..., m) array, ``R(w̄_i^{⊗l})``
    target_values : (..., m) array, ``T*(w̄_i^{⊗l})``, or None for a step made with ``values=False``

    The loss comes from these only when asked: the loop checks it every few
    steps, not at each, and asks for ``target_values`` on those steps only.
    """

    W: Array
    masses: Array
    weights: Array
    model_minus_target: Array
    target_values: Array | None

    def residual_sq(self, xp: Any, target_sq: Array) -> Array:
        """``‖T(W) - T*‖²`` before the step, ``(...)``, clipped at 0.

        ``‖T(W)‖² - 2<T(W), T*> + ‖T*‖²`` with ``<T(W), S> = Σ_i σ_i s_i S(w̄_i^{⊗l})``:
        a difference of terms of size ``‖T*‖²``, so it resolves relative errors
        only down to about ``sqrt(eps)`` (1e-8 in float64).
        """
        if self.target_values is None:
            raise ValueError("this step was made without its target values (values=False)")
        terms = self.weights * (self.model_minus_target - self.target_values)
        if isinstance(terms, np.ndarray):  # checked every few steps: NumPy's own calls, the same numbers
            return np.maximum(np.add.reduce(terms, axis=-1) + target_sq, 0.0)
        r = xp.sum(terms, axis=-1) + target_sq
        return xp.maximum(r, xp.zeros_like(r))

    def loss(self, xp: Any, reg: float, target_sq: Array) -> Array:
        """``½‖T(W) - T*‖² + (λ/2)‖W‖²`` before the step, ``(...)``."""
        return 0.5 * self.residual_sq(xp, target_sq) + 0.5 * reg * xp.sum(self.masses, axis=-1)


def arrangement(target: TargetOp, m: int, d: int) -> str:
    """``"stacked"`` or ``"blocked"``: which arrangement :func:`balanced_step` uses.

    Stacked for a factored target with ``m <= d``; below ``CARRY_ENTRIES`` entries of ``W``, where a
    step is mostly its calls and the stacked step makes fewer, also up to ``m = 2d``, and at any
    ``m / d`` below ``SMALL_ENTRIES``: measured at ``benchmarks/bench_step.py``'s shapes and around
    them (``docs/benchmarks.md``).
    """
    if not isinstance(target, FactoredOp):
        return "blocked"
    small = m * d < CARRY_ENTRIES and (m <= 2 * d or m * d <= SMALL_ENTRIES)
    return "stacked" if m <= d or small else "blocked"


class StepFn(Protocol):
    """A step with everything but ``W`` fixed; ``values=False`` may leave ``target_values`` out
    (the loop needs them at its checks only), which never changes the other fields."""

    def __call__(self, W: Array, *, values: bool = True) -> Step: ...


def stepper(xp: Any, W: Array, target: TargetOp, step_size: Array | float, reg: Array | float,
            signs: Array | None = None) -> StepFn:
    """:func:`balanced_step` with everything but ``W`` fixed, its arrangement chosen once.

    The loop calls the returned function at every step, so on NumPy the stacked step is
    made of plain NumPy calls writing into its own arrays (:func:`_numpy_stacked`): the
    same operations in the same order, hence the same numbers, without the array
    namespace's Python layer. ``W`` only gives the shape, dtype and library.
    """
    m, d = W.shape[-2], W.shape[-1]
    if arrangement(target, m, d) == "blocked":
        return partial(_blocked, xp, target=target, eta=step_size, reg=reg, signs=signs)
    assert isinstance(target, FactoredOp)
    if isinstance(W, np.ndarray) and m * d < CARRY_ENTRIES:
        return _numpy_stacked(xp, W, target, step_size, reg, signs)
    return partial(_stacked, xp, target=target, eta=step_size, reg=reg, signs=signs)


def balanced_step(xp: Any, W: Array, target: TargetOp, step_size: Array | float, reg: float,
                  signs: Array | None = None, *, values: bool = True) -> Step:
    """One step ``W - η ∇L(W)`` of the balanced model, without forming the gradient.

    Parameters
    ----------
    xp : the array namespace of ``W`` (resolved once by the caller)
    W : (..., m, d) array
    target : operator with the batch shape of ``W``
    step_size : ``η``, a float or a ``(..., 1)`` array (one per run)
    reg : ``λ``
    signs : (m,) array of fixed ``σ_i = ±1``, or None: the signed model ``Σ_i σ_i s_i w̄_i^{⊗l}``,
        whose step has ``σ_i`` on every model weight ``s_i``, on the factor ``n_i`` and on
        ``R(w̄_i^{⊗l})`` (:mod:`overtensor.solvers.objective`)
    values : False lets the step leave out ``target_values`` (:class:`StepFn`)
    """
    m, d = W.shape[-2], W.shape[-1]
    if isinstance(target, FactoredOp) and arrangement(target, m, d) == "stacked":
        return _stacked(xp, W, target, step_size, reg, signs, values)
    return _blocked(xp, W, target, step_size, reg, signs)


@lru_cache(maxsize=16)
def _cached_eye(xp: Any, m: int, dtype: Any, device: Any) -> Array:
    return xp.eye(m, dtype=dtype, device=device)


def _eye(xp: Any, m: int, like: Array) -> Array:
    """The ``(m, m)`` identity in ``like``'s library, dtype and device, made once per kind."""
    return _cached_eye(xp, m, like.dtype, array_device(like))


def _inverse(xp: Any, n: Array, s: Array) -> Array:
    """``1 / n``, and 1 for a zero row (``n = s = 0``): every term such a row enters is
    multiplied by the row or its mass, both 0, so its ``w̄`` stays 0."""
    return 1.0 / xp.where(n > 0, n, s + 1.0)


def _weighted_power(G: Array, k: int, weights: Array) -> Array:
    """``weights_k G_ik^k`` as a new array; ``G (..., m, n)`` is left as it is, ``weights (..., n)``."""
    P = G * weights[..., None, :]
    for _ in range(k - 1):
        P *= G
    return P


def _stack(xp: Any, W: Array, A: Array) -> Array:
    """``S = [W; A]``, ``(..., m + r, d)``: the buffer the previous step wrote ``W`` into, else a copy."""
    buf = _STACKS.get(W, A) if W.shape[-2] * W.shape[-1] >= CARRY_ENTRIES else None
    return buf if buf is not None else xp.concat([W, A], axis=-2)


def _stacked(xp: Any, W: Array, target: FactoredOp, eta: Array | float, reg: float, signs: Array | None,
             values: bool = True) -> Step:
    # W̄ is never formed: one product W Sᵀ with S = [W; A] holds W Wᵀ and W Aᵀ (the rows A Sᵀ
    # would only be thrown away); its rows scaled by 1/n_i give H = [D⁻¹ W Wᵀ | W̄ Aᵀ], D = diag(n),
    # so G_ik = H_ik / n_k and M's G-block is -η l n_i (σ_k n_k^{2-l} H_ik^{l-1}) + δ_ik (...): a
    # weight per column on H's powers, as -c_j is on the C-block. On NumPy the product writes
    # into the next step's S, so no (m, d) pass is left besides the products
    l, m = target.order, W.shape[-2]
    A, c = target.vectors, target.weights
    S = _stack(xp, W, A)
    H = _leading_rows(xp, S, m)  # (..., m, m + r): W [W; A]ᵀ, the rows the step needs
    s = xp.linalg.diagonal(H) * 1.0  # a copy: H is overwritten below
    n = xp.sqrt(s)
    inv = _inverse(xp, n, s)
    H *= inv[..., :, None]
    weights, factor = (s, n) if signs is None else (signs * s, signs * n)
    K = _weighted_power(H, l - 1, xp.concat([_column_weights(inv, l, signs), -c], axis=-1))
    Rv = xp.vecdot(K, H)  # R(w̄_i^{⊗l}), the model's and the target's terms in one sum
    Qv = -xp.vecdot(K[..., m:], H[..., m:]) if values else None  # T*(w̄_i^{⊗l})
    K *= ((-eta * l) * factor)[..., :, None]
    K[..., :m] += _eye(xp, m, W) * _kept(eta, l, reg, signs)(Rv)[..., None]
    return Step(_product(xp, K, S, A), s, weights, Rv, Qv)


def _leading_rows(xp: Any, S: Array, m: int) -> Array:
    """``W Sᵀ``, ``(..., m, m + r)``, the first ``m`` rows of ``S Sᵀ`` for ``S = [W; A]``: as a view of
    the whole Gram from :data:`SYRK_ROWS` rows on, else formed alone."""
    if m >= SYRK_ROWS:
        return (S @ matrix_transpose(S))[..., :m, :]
    return S[..., :m, :] @ matrix_transpose(S)


def _column_weights(inv: Array, l: int, signs: Array | None) -> Array:
    """``σ_k n_k^{2-l} = σ_k s_k / n_k^l`` as ``σ_k inv_k^{l-2}``, ``(..., m)``: the weight of column ``k``
    of ``H^{∘(l-1)}`` in ``M``. A zero row has ``inv = 1``; its column of ``H`` is 0, and so its terms."""
    v = inv if l >= 3 else inv * 0.0 + 1.0
    for _ in range(l - 3):
        v = v * inv
    return v if signs is None else signs * v


def _numpy_stacked(xp: Any, W: np.ndarray, target: FactoredOp, eta: Array | float, reg: Array | float,
                   signs: Array | None) -> StepFn:
    """:func:`_stacked` on NumPy below ``CARRY_ENTRIES``, as a closure over what stays fixed.

    Every line mirrors one of :func:`_stacked` (same operands, same order, same shapes), so
    the results agree with it value for value (a zero may differ in sign); each call writes
    into arrays made once (``[W; A]``, ``H``, ``K``, the weights, views of their blocks and of
    the diagonal), and ``(1 - η[...])`` is added to that diagonal alone instead of through an
    ``(m, m)`` identity: at ``m = 20`` a step is mostly the cost of its NumPy calls. Hence a
    returned :class:`Step`'s ``masses`` and ``weights`` hold until the next call only (the
    loop reads them before it); ``W`` is new.
    """
    l, m = target.order, W.shape[-2]
    A, neg_c = target.vectors, -target.weights
    coef = -eta * l  # as (-eta * l) in _stacked
    unsigned = signs is None
    sigma: Array = 1.0 if signs is None else signs  # read only where signs is given
    keep = _kept(eta, l, reg, signs)
    S = np.concatenate([W, A], axis=-2)  # [W; A]: only the first m rows change from step to step
    ST, S_top, vecdot = matrix_transpose(S), S[..., :m, :], xp.vecdot  # NumPy's vecdot from 2.0
    syrk = m >= SYRK_ROWS  # as _leading_rows
    F = np.empty(S.shape[:-1] + S.shape[-2:-1] if syrk else W.shape[:-1] + S.shape[-2:-1], dtype=S.dtype)
    H = F[..., :m, :]  # W [W; A]ᵀ, then its rows scaled
    left = S if syrk else S_top
    masses = H.diagonal(0, -2, -1)  # a view: s_i of the latest product
    K = np.empty(H.shape, dtype=W.dtype)
    diagonal = np.lib.stride_tricks.as_strided(K, K.shape[:-1], K.strides[:-2] + (sum(K.strides[-2:]),))
    wc = np.concatenate([np.empty(W.shape[:-1], dtype=W.dtype), neg_c], axis=-1)  # [column weights | -c_j]
    v, wc_rows = wc[..., :m], wc[..., None, :]
    s, scale = np.empty(W.shape[:-1], dtype=W.dtype), np.empty(W.shape[:-1], dtype=W.dtype)
    inv = v if unsigned and l == 3 else np.empty(W.shape[:-1], dtype=W.dtype)  # v = inv there: no copy
    inv_rows, scale_rows = inv[..., :, None], scale[..., :, None]
    KC, HC = K[..., m:], H[..., m:]

    def step(W: np.ndarray, *, values: bool = True) -> Step:
        np.copyto(S_top, W)
        np.matmul(left, ST, out=F)
        np.copyto(s, masses)
        weights = s if unsigned else sigma * s
        n = np.sqrt(s)
        np.divide(1.0, n + (s == 0), out=inv)  # _inverse's values, nan and inf included, in fewer passes
        np.multiply(H, inv_rows, out=H)
        if inv is not v:
            np.copyto(v, _column_weights(inv, l, signs))
        np.multiply(H, wc_rows, out=K)
        for _ in range(l - 2):
            np.multiply(K, H, out=K)
        Rv = vecdot(K, H)
        Qv = -vecdot(KC, HC) if values else None
        np.multiply(coef, n if unsigned else sigma * n, out=scale)
        np.multiply(K, scale_rows, out=K)
        np.add(diagonal, keep(Rv), out=diagonal)
        return Step(np.matmul(K, S), s, weights, Rv, Qv)

    return step


def _kept(eta: Array | float, l: int, reg: Array | float, signs: Array | None) -> Callable[[Array], Array]:
    """``R -> 1 - η[(2 - l) σ R + λ]``, each row's own factor in every arrangement's step, in as few
    passes as give the same numbers: for ``l = 3``, ``-R + λ = λ - R`` exactly, and ``1 - η(-R + 0) = 1 + η R``
    (a zero of either sign gives 1)."""
    if signs is None and l == 3:
        if isinstance(reg, float) and reg == 0.0:
            return lambda R: 1.0 + eta * R
        return lambda R: 1.0 - eta * (reg - R)
    if signs is None:
        return lambda R: 1.0 - eta * ((2 - l) * R + reg)
    return lambda R: 1.0 - eta * ((2 - l) * (signs * R) + reg)


def _product(xp: Any, M: Array, S: Array, A: Array) -> Array:
    """``M S``, ``(..., m, d)``; on NumPy, from ``CARRY_ENTRIES`` entries, the leading rows of a
    new ``[M S; A]``, which the next step takes as its ``S`` (:class:`_StackRegistry`)."""
    m = M.shape[-2]
    if not isinstance(S, np.ndarray) or m * S.shape[-1] < CARRY_ENTRIES:
        return M @ S
    out = np.empty(S.shape, dtype=S.dtype)
    out[..., m:, :] = A  # (r, d): a tenth of an (m, d) pass where r = m / 10
    W = np.matmul(M, S, out=out[..., :m, :])
    _STACKS.add(W, out, A)
    return W


class _StackRegistry:
    """The arrays ``W`` that :func:`_product` returned, weakly held, each with its buffer ``[W; A]``.

    ``get(W, A)`` returns the buffer when ``W`` is one of those very arrays (so exactly the
    buffer's first ``m`` rows) and the buffer's last rows hold this ``A`` (the same array
    object). Nothing writes a step's arrays but the step, so the rows of ``A`` stay as
    written; only the newest few are remembered.
    """

    SIZE = 8

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[np.ndarray], weakref.ref[np.ndarray], weakref.ref[Any]]] = {}

    def add(self, W: np.ndarray, buf: np.ndarray, A: Array) -> None:
        if len(self._entries) >= self.SIZE:
            del self._entries[next(iter(self._entries))]  # the oldest
        self._entries[id(W)] = (weakref.ref(W), weakref.ref(buf), weakref.ref(A))

    def get(self, W: Array, A: Array) -> np.ndarray | None:
        entry = self._entries.get(id(W))
        if entry is None or entry[0]() is not W or entry[2]() is not A:
            return None
        return entry[1]()  # alive: W is a view of it


_STACKS = _StackRegistry()


def _blocked(xp: Any, W: Array, target: TargetOp, eta: Array | float, reg: Array | float,
             signs: Array | None, values: bool = True) -> Step:
    # m > d: the (m, m) passes dominate, so each block of G gets one (its power, in place), and
    # the masses scale the (m, d) factor instead: s_k w̄_k = n_k w_k. The target values come
    # with the blocks, so `values` changes nothing here
    l = target.order
    s = xp.vecdot(W, W)
    n = xp.sqrt(s)
    inv = _inverse(xp, n, s)
    weights, factor = (s, n) if signs is None else (signs * s, signs * n)
    if isinstance(target, FactoredOp):
        Wbar, P, Qv = _factored_blocks(xp, W, target, inv, factor)
    else:
        Wbar, P, Qv = _target_blocks(xp, W, target, inv, factor)
    Rv = xp.vecdot(P, Wbar)  # R(w̄_i^{⊗l})
    P *= ((-eta * l) * factor)[..., None]
    P += W * _kept(eta, l, reg, signs)(Rv)[..., None]
    return Step(P, s, weights, Rv, Qv)


def _target_blocks(xp: Any, W: Array, target: TargetOp, inv: Array, factor: Array) -> tuple[Array, Array, Array]:
    """``(W̄, R(w̄_i^{⊗(l-1)}, ·), T*(w̄_i^{⊗l}))`` with the target seen through ``contract`` only."""
    l, m = target.order, W.shape[-2]
    Wbar = W * inv[..., None]
    Wbar_T, nW = matrix_transpose(Wbar), factor[..., None] * W  # σ_k s_k w̄_k = σ_k n_k w_k
    rows = max(1, min(m, BLOCK_ENTRIES // m))
    if rows == m:
        P = power(Wbar @ Wbar_T, l - 1) @ nW
    else:
        P = xp.concat([power(Wbar[..., i:i + rows, :] @ Wbar_T, l - 1) @ nW for i in range(0, m, rows)], axis=-2)
    Q = target.contract(Wbar)  # T*(w̄_i^{⊗(l-1)}, ·)
    P -= Q  # R(w̄_i^{⊗(l-1)}, ·), in P's buffer
    return Wbar, P, xp.vecdot(Q, Wbar)


def _factored_blocks(xp: Any, W: Array, target: FactoredOp, inv: Array, factor: Array) -> tuple[Array, Array, Array]:
    """:func:`_target_blocks` for ``T* = Σ_j c_j a_j^{⊗l}``, whose vectors join the rows of both products.

    With ``S̄ = [W̄; A]`` and ``U = [σ n W; A]``, ``R(w̄_i^{⊗(l-1)}, ·) = Σ_k K_ik U_k`` for
    ``K = [G^{∘(l-1)} | -c ∘ C^{∘(l-1)}]`` and ``[G | C] = W̄ S̄ᵀ``: one product per block of
    rows of ``K`` against ``S̄ᵀ`` and one against ``U``, with no contraction or subtraction
    left over ``(m, d)`` arrays; ``T*(w̄_i^{⊗l}) = Σ_j c_j C_ij^l`` comes from the ``(m, r)`` block.
    """
    l, m, A, c = target.order, W.shape[-2], target.vectors, target.weights
    Sbar, U = _scaled_rows_on(xp, W, inv, A), _scaled_rows_on(xp, W, factor, A)
    Sbar_T = matrix_transpose(Sbar)
    rows = max(1, min(m, BLOCK_ENTRIES // Sbar.shape[-2]))
    P, Qv = [], []
    for i in range(0, m, rows):
        K = Sbar[..., i:min(i + rows, m), :] @ Sbar_T  # [G | C] for these rows
        KC = _weighted_power(K[..., m:], l - 1, -c)  # -c_j C_ij^{l-1}
        Qv.append(-xp.vecdot(KC, K[..., m:]))
        K = power(K, l - 1)
        K[..., m:] = KC
        P.append(K @ U)
    Wbar = Sbar[..., :m, :]
    if len(P) == 1:
        return Wbar, P[0], Qv[0]
    return Wbar, xp.concat(P, axis=-2), xp.concat(Qv, axis=-1)


def _scaled_rows_on(xp: Any, W: Array, scale: Array, A: Array) -> Array:
    """``[scale ∘ W; A]``, ``(..., m + r, d)``, with ``scale (..., m)`` on the rows of ``W``; on NumPy
    the product is written in place, not formed and copied (one ``(m, d)`` pass, not two)."""
    if not isinstance(W, np.ndarray):
        return xp.concat([W * scale[..., None], A], axis=-2)
    m = W.shape[-2]
    out = np.empty(W.shape[:-2] + (m + A.shape[-2], W.shape[-1]), dtype=W.dtype)
    np.multiply(W, scale[..., None], out=out[..., :m, :])
    out[..., m:, :] = A
    return out
