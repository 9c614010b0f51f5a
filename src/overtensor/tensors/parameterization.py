r"""How the parameters ``W (..., m, d)`` map to a symmetric CP tensor ``Σ_i s_i w̄_i^{⊗l}``.

``balanced`` (the paper's, 2-homogeneous): ``s_i = ‖w_i‖²``; ``plain`` (``l``-homogeneous):
``s_i = ‖w_i‖^l``; ``signed`` balanced: ``s_i = σ_i ‖w_i‖²`` with fixed signs ``σ_i ∈ {+1, -1}``.
The loss and gradient of each are in :mod:`overtensor.solvers.objective`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..backend import Array, array_namespace
from ..errors import OvertensorError

__all__ = ["PARAMETERIZATIONS", "Parameterization", "check_parameterization", "check_signs", "homogeneity",
           "model_parts"]

Parameterization = Literal["balanced", "plain"]
PARAMETERIZATIONS: tuple[str, ...] = ("balanced", "plain")


def check_parameterization(name: str) -> str:
    if name not in PARAMETERIZATIONS:
        raise OvertensorError(f"unknown parameterization {name!r}; expected one of {PARAMETERIZATIONS}")
    return name


def check_signs(signs: object, components: int, parameterization: str = "balanced") -> np.ndarray | None:
    """The fixed signs ``σ (m,)`` of a signed model, or None for the unsigned one.

    ``signs`` is None, ``"half"`` (the first ``⌈m/2⌉`` components +1, the rest -1)
    or ``m`` numbers, each +1 or -1. Only the balanced parameterization is signed.
    """
    if signs is None:
        return None
    if parameterization != "balanced":
        raise OvertensorError(f"signs need the balanced parameterization, got {parameterization!r}")
    if isinstance(signs, str):
        if signs != "half":
            raise OvertensorError(f"signs must be 'half' or {components} values of +1/-1, got {signs!r}")
        return np.where(np.arange(components) < (components + 1) // 2, 1.0, -1.0)
    try:
        arr = np.asarray(signs, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape != (components,) or not np.all(np.abs(arr) == 1):
        raise OvertensorError(f"signs must be 'half' or {components} values of +1/-1, got {signs!r}")
    return arr


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
