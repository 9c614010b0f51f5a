r"""The over-parameterized model, its loss and its exact gradient.

Two parameterizations of ``m`` components ``W (..., m, d)``:

``balanced`` (the paper's, 2-homogeneous)
    ``T(W) = Σ_i ‖w_i‖^{2-l} w_i^{⊗l} = Σ_i s_i w̄_i^{⊗l}``, ``s_i = ‖w_i‖²``.
``plain`` (``l``-homogeneous; zero is a high-order saddle)
    ``T(W) = Σ_i w_i^{⊗l}``.

Loss ``L(W) = ½ ‖T(W) - T*‖²_F + (λ/2) ‖W‖²_F``. With ``R = T(W) - T*``:

- balanced: ``∇_{w_i} L = n_i [ l R(w̄_i^{⊗(l-1)}, ·) + (2 - l) R(w̄_i^{⊗l}) w̄_i ] + λ w_i``;
- plain:    ``∇_{w_i} L = l R(w_i^{⊗(l-1)}, ·) + λ w_i``.

``R(x^{⊗(l-1)}, ·) = Σ_k s_k <w̄_k, x>^{l-1} w̄_k - T*(x^{⊗(l-1)}, ·)``: one Gram
matrix ``W̄ W̄ᵀ``, one ``(m × m)·(m × d)`` product, and the target's
contraction, ``O((m + r) m d)`` for a factored target. The squared residual
``‖R‖² = Σ_i s_i <P_i, w̄_i> - 2 Σ_i s_i <Q_i, w̄_i> + ‖T*‖²`` reuses the same
products (``P`` the model's contraction, ``Q`` the target's). A zero row has
``w̄_i = 0`` and gradient 0; nothing divides by zero.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from ._array import Array, array_namespace, row_dot
from .errors import OvertensorError
from .kernels import TargetOp

__all__ = ["Evaluation", "PARAMETERIZATIONS", "Parameterization", "evaluate", "model_parts", "homogeneity"]

Parameterization = Literal["balanced", "plain"]
PARAMETERIZATIONS: tuple[str, ...] = ("balanced", "plain")


class Evaluation(NamedTuple):
    """Loss and gradient at one point; leading batch shape ``...``.

    loss : (...) array, ``½‖R‖² + (λ/2)‖W‖²``
    residual_sq : (...) array, ``‖T(W) - T*‖²`` (clipped at 0)
    grad : (..., m, d) array
    """

    loss: Array
    residual_sq: Array
    grad: Array


def check_parameterization(name: str) -> str:
    if name not in PARAMETERIZATIONS:
        raise OvertensorError(f"unknown parameterization {name!r}; expected one of {PARAMETERIZATIONS}")
    return name


def homogeneity(parameterization: str, order: int) -> int:
    """``p`` with ``T(cW) = c^p T(W)``: 2 for balanced, ``l`` for plain."""
    return 2 if parameterization == "balanced" else order


def model_parts(W: Array, order: int, parameterization: str = "balanced") -> tuple[Array, Array, Array]:
    """``(masses, directions, norms)`` of the model: ``T(W) = Σ_i masses_i dir_i^{⊗l}``.

    masses : (..., m), directions : (..., m, d) unit rows (0 for zero rows), norms : (..., m)
    """
    xp = array_namespace(W)
    norms = xp.linalg.vector_norm(W, axis=-1)
    safe = xp.where(norms > 0, norms, xp.ones_like(norms))
    directions = W / safe[..., None]
    power = 2 if parameterization == "balanced" else order
    return norms**power, directions, norms


def evaluate(W: Array, target: TargetOp, reg: float = 0.0, parameterization: str = "balanced",
             target_sq: Array | None = None) -> Evaluation:
    """Loss and exact gradient of the model at ``W (..., m, d)``.

    ``target_sq`` is ``‖T*‖²`` when the caller has it already (it is constant
    over a run); otherwise it is computed.
    """
    xp = array_namespace(W)
    l = target.order
    if target_sq is None:
        target_sq = target.norm_sq()
    if parameterization == "balanced":
        masses, Wbar, norms = model_parts(W, l, parameterization)
        G = Wbar @ Wbar.mT
        P = (masses[..., None, :] * G ** (l - 1)) @ Wbar  # T(W)(w̄_i^{⊗(l-1)}, ·)
        Q = target.contract(Wbar)  # T*(w̄_i^{⊗(l-1)}, ·)
        Rc = P - Q
        model_sq = xp.sum(masses * row_dot(P, Wbar), axis=-1)
        cross = xp.sum(masses * row_dot(Q, Wbar), axis=-1)
        Rv = row_dot(Rc, Wbar)  # R(w̄_i^{⊗l})
        grad = norms[..., None] * (l * Rc + (2 - l) * Rv[..., None] * Wbar)
    else:
        G = W @ W.mT
        P = G ** (l - 1) @ W
        Q = target.contract(W)
        model_sq = xp.sum(row_dot(P, W), axis=-1)
        cross = xp.sum(row_dot(Q, W), axis=-1)
        grad = l * (P - Q)
    residual_sq = xp.clip(model_sq - 2 * cross + target_sq, min=0.0)
    loss = 0.5 * residual_sq
    if reg:
        grad = grad + reg * W
        loss = loss + 0.5 * reg * xp.sum(W * W, axis=(-2, -1))
    return Evaluation(loss, residual_sq, grad)
