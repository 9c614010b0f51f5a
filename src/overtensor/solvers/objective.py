r"""The over-parameterized model, its loss and its exact gradient.

Two parameterizations of ``m`` components ``W (..., m, d)``:

``balanced`` (the paper's, 2-homogeneous)
    ``T(W) = Σ_i ‖w_i‖^{2-l} w_i^{⊗l} = Σ_i s_i w̄_i^{⊗l}``, ``s_i = ‖w_i‖²``.
``plain`` (``l``-homogeneous; zero is a high-order saddle)
    ``T(W) = Σ_i w_i^{⊗l}``.

``signed`` balanced (for targets with weights of both signs at even order)
    ``T(W) = Σ_i σ_i ‖w_i‖² w̄_i^{⊗l}`` with fixed signs ``σ_i ∈ {+1, -1}`` (``signs``).

Loss ``L(W) = ½ ‖T(W) - T*‖²_F + (λ/2) ‖W‖²_F``. With ``R = T(W) - T*``:

- balanced: ``∇_{w_i} L = n_i [ l R(w̄_i^{⊗(l-1)}, ·) + (2 - l) R(w̄_i^{⊗l}) w̄_i ] + λ w_i``;
- plain:    ``∇_{w_i} L = l R(w_i^{⊗(l-1)}, ·) + λ w_i``;
- signed:   the balanced gradient with its ``R`` terms times ``σ_i`` (``∂<R, σ_i s_i w̄_i^{⊗l}>``
  is ``σ_i`` times the unsigned derivative), and ``s_i`` replaced by ``σ_i s_i`` in ``T(W)``
  and in ``‖R‖²`` below.

``R(x^{⊗(l-1)}, ·) = Σ_k s_k <w̄_k, x>^{l-1} w̄_k - T*(x^{⊗(l-1)}, ·)``: one Gram
matrix ``W̄ W̄ᵀ``, one ``(m × m)·(m × d)`` product, and the target's
contraction, ``O((m + r) m d)`` for a factored target. The squared residual
``‖R‖² = Σ_i s_i [R(w̄_i^{⊗l}) - T*(w̄_i^{⊗l})] + ‖T*‖²`` reuses the same
products. It is a difference of terms of size ``‖T*‖²``, so it resolves
relative errors down to about ``sqrt(eps)`` of the dtype (``1e-8`` in float64,
about ``3e-4`` in float32). A zero row has
``w̄_i = 0`` and gradient 0; nothing divides by zero.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import Array, array_namespace, matrix_transpose
from ..tensors.kernels import TargetOp, power
from ..tensors.parameterization import (
    PARAMETERIZATIONS,
    Parameterization,
    check_signs,
    homogeneity,
    model_parts,
)

__all__ = ["Evaluation", "PARAMETERIZATIONS", "Parameterization", "evaluate", "model_parts", "homogeneity",
           "check_signs"]



class Evaluation(NamedTuple):
    """Loss and gradient at one point; leading batch shape ``...``.

    loss : (...) array, ``½‖R‖² + (λ/2)‖W‖²``
    residual_sq : (...) array, ``‖T(W) - T*‖²`` (clipped at 0)
    grad : (..., m, d) array
    """

    loss: Array
    residual_sq: Array
    grad: Array


def evaluate(W: Array, target: TargetOp, reg: float = 0.0, parameterization: str = "balanced",
             target_sq: Array | None = None, signs: Array | None = None) -> Evaluation:
    """Loss and exact gradient of the model at ``W (..., m, d)``.

    ``target_sq`` is ``‖T*‖²`` when the caller has it already (it is constant
    over a run); otherwise it is computed. ``signs (m,)``, of the balanced
    model only, makes it signed (see the module docstring).

    Two matrix products dominate, ``G = W̄ W̄ᵀ`` and ``G^{∘(l-1)} (s ∘ W̄)``; the
    rest is one in-place pass over ``G`` and a few ``(m, d)`` passes. The masses
    scale the ``(m, d)`` factor (``s_k w̄_k = n_k w_k``) rather than ``G``, and
    ``n_i w̄_i = w_i`` folds the norms into the gradient's second term.
    """
    xp = array_namespace(W)
    l = target.order
    if target_sq is None:
        target_sq = target.norm_sq()
    if parameterization == "balanced":
        masses = xp.vecdot(W, W)  # s_i = n_i²
        norms = xp.sqrt(masses)
        Wbar = W / xp.where(norms > 0, norms, xp.ones_like(norms))[..., None]  # 0 for a zero row
        if signs is not None:  # σ_i n_i: every place the model's masses enter, and the gradient's factor
            masses, norms = signs * masses, signs * norms
        P = power(Wbar @ matrix_transpose(Wbar), l - 1) @ (norms[..., None] * W)  # T(W)(w̄_i^{⊗(l-1)}, ·)
        Q = target.contract(Wbar)  # T*(w̄_i^{⊗(l-1)}, ·)
        Qv = xp.vecdot(Q, Wbar)  # T*(w̄_i^{⊗l})
        R = P  # R(w̄_i^{⊗(l-1)}, ·) = P - Q, in P's buffer
        R -= Q
        Rv = xp.vecdot(R, Wbar)  # R(w̄_i^{⊗l})
        # ‖R‖² = ‖T(W)‖² - 2<T(W), T*> + ‖T*‖² with <T(W), S> = Σ_i s_i S(w̄_i^{⊗l})
        residual_sq = xp.sum(masses * (Rv - Qv), axis=-1) + target_sq
        grad = R  # n_i l R(w̄_i^{⊗(l-1)}, ·) + (2 - l) R(w̄_i^{⊗l}) w_i (times σ_i), in the same buffer
        grad *= (l * norms)[..., None]
        grad += ((2 - l) * (Rv if signs is None else signs * Rv))[..., None] * W
    else:
        R = power(W @ matrix_transpose(W), l - 1) @ W  # T(W)(w_i^{⊗(l-1)}, ·), then R(w_i^{⊗(l-1)}, ·) in place
        Q = target.contract(W)
        Qv = xp.vecdot(Q, W)
        R -= Q
        residual_sq = xp.sum(xp.vecdot(R, W) - Qv, axis=-1) + target_sq
        grad = R
        grad *= l
    residual_sq = xp.maximum(residual_sq, xp.zeros_like(residual_sq))  # rounding can take it below 0
    # (array arguments throughout: Python scalars in where/maximum need the 2024.12 array API)
    loss = 0.5 * residual_sq
    if reg:
        grad += reg * W
        loss = loss + 0.5 * reg * xp.sum(W * W, axis=(-2, -1))
    return Evaluation(loss, residual_sq, grad)
