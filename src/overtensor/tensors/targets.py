"""Random ground-truth tensors ``T* = Σ_j c_j a_j^{⊗l}`` for experiments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Union

import numpy as np

from ..validation import check_dense_size, check_order, check_positive_int, check_seed
from .dense import DenseSymTensor, Tensor, symmetrize
from ..errors import OvertensorError
from .symcp import SymCP

__all__ = ["make_target", "add_noise", "KINDS", "WEIGHT_PROFILES"]

KINDS = ("orthonormal", "gaussian", "coherent")
WEIGHT_PROFILES = ("equal", "geometric")

Kind = Literal["orthonormal", "gaussian", "coherent"]
Weights = Union[Literal["equal", "geometric"], Sequence[float]]


def _weights(weights: Weights, rank: int, spread: float) -> np.ndarray:
    if isinstance(weights, str):
        if weights == "equal":
            return np.ones(rank)
        if weights == "geometric":
            if not np.isfinite(spread) or spread < 1:
                raise OvertensorError(f"spread must be a finite number >= 1, got {spread}")
            # from 1 down to 1/spread, largest first
            return spread ** (-np.arange(rank) / max(rank - 1, 1))
        raise OvertensorError(
            f"unknown weights {weights!r}; expected one of {WEIGHT_PROFILES} or a list of numbers"
        )
    arr = np.asarray(weights, dtype=np.float64)
    if arr.shape != (rank,):
        raise OvertensorError(f"expected {rank} weights (one per component), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise OvertensorError(f"weights must be finite and > 0, got {arr.tolist()}")
    return arr


def _directions(kind: str, dim: int, rank: int, coherence: float, rng: np.random.Generator) -> np.ndarray:
    if kind == "gaussian":
        A = rng.standard_normal((rank, dim))
        return A / np.linalg.norm(A, axis=1, keepdims=True)
    if kind == "orthonormal":
        if rank > dim:
            raise OvertensorError(f"an orthonormal target needs rank <= dim, got rank {rank} > dim {dim}")
        Q, R = np.linalg.qr(rng.standard_normal((dim, rank)))
        return (Q * np.sign(np.diag(R))).T
    if kind == "coherent":
        if not 0 <= coherence < 1:
            raise OvertensorError(f"coherence must lie in [0, 1), got {coherence}")
        if rank + 1 > dim:
            raise OvertensorError(f"a coherent target needs rank + 1 <= dim, got rank {rank}, dim {dim}")
        Q, R = np.linalg.qr(rng.standard_normal((dim, rank + 1)))
        Q = (Q * np.sign(np.diag(R))).T
        # a_j = sqrt(1-μ) e_j + sqrt(μ) u: unit vectors with <a_i, a_j> = μ for i != j
        return np.sqrt(1 - coherence) * Q[:rank] + np.sqrt(coherence) * Q[rank]
    raise OvertensorError(f"unknown kind {kind!r}; expected one of {KINDS}")


def make_target(
    dim: int,
    rank: int,
    order: int = 3,
    *,
    kind: Kind = "orthonormal",
    weights: Weights = "equal",
    spread: float = 10.0,
    coherence: float = 0.5,
    seed: int = 0,
) -> SymCP:
    """A random rank-``r`` symmetric tensor with unit components.

    Parameters
    ----------
    dim, rank, order : int
        ``d``, ``r`` and ``l``.
    kind : {"orthonormal", "gaussian", "coherent"}
        Orthonormal directions (needs ``r <= d``), independent uniform random
        unit vectors, or unit vectors with every pairwise cosine equal to
        ``coherence`` (needs ``r + 1 <= d``).
    weights : "equal", "geometric" or a sequence of ``r`` positive numbers
        ``geometric`` spaces the weights evenly in log scale from 1 down to ``1/spread``.
    seed : int
        Same seed, same target.

    Returns
    -------
    SymCP with weights ``(r,)`` (largest first for the built-in profiles) and unit vectors ``(r, d)``.

    Examples
    --------
    >>> import numpy as np
    >>> import overtensor as ot
    >>> target = ot.make_target(dim=50, rank=5, order=3, seed=0)
    >>> target
    SymCP(rank=5, dim=50, order=3)
    >>> np.allclose(target.vectors @ target.vectors.T, np.eye(5))   # orthonormal by default
    True
    >>> ot.make_target(10, 3, weights="geometric", spread=100).weights.round(3).tolist()
    [1.0, 0.1, 0.01]
    """
    dim = check_positive_int("dim", dim)
    rank = check_positive_int("rank", rank)
    order = check_order(order)
    c = _weights(weights, rank, spread)
    rng = np.random.default_rng(check_seed(seed))
    A = _directions(kind, dim, rank, coherence, rng)
    return SymCP(c, A, order)


def add_noise(target: Tensor, level: float, *, seed: int = 0) -> DenseSymTensor:
    """A dense copy of ``target`` plus symmetric Gaussian noise of norm ``level · ‖target‖``.

    Examples
    --------
    >>> import overtensor as ot
    >>> target = ot.make_target(dim=8, rank=2, order=3, seed=0)
    >>> noisy = ot.add_noise(target, 0.1, seed=0)
    >>> noisy
    DenseSymTensor(dim=8, order=3)
    >>> round(noisy.distance(target) / target.norm(), 6)
    0.1
    """
    if not np.isfinite(level) or level < 0:
        raise OvertensorError(f"noise level must be a finite number >= 0, got {level}")
    check_dense_size(target.dim, target.order)
    dense = target.to_dense()
    noise = symmetrize(np.random.default_rng(seed).standard_normal(dense.shape))
    noise *= level * np.linalg.norm(dense.ravel()) / np.linalg.norm(noise.ravel())
    return DenseSymTensor(dense + noise)
