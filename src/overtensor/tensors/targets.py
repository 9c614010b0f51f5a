"""Random ground-truth tensors ``T* = Σ_j c_j a_j^{⊗l}`` for experiments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ..errors import OvertensorError
from ..validation import check_dense_size, check_order, check_positive_int, check_seed
from .dense import DenseSymTensor, Tensor, symmetrize
from .symcp import SymCP

__all__ = ["make_target", "add_noise", "KINDS", "WEIGHT_PROFILES", "FAMILIES"]

KINDS = ("orthonormal", "gaussian", "coherent", "bounded")
WEIGHT_PROFILES = ("equal", "geometric")

#: Named target families: presets of ``kind, weights, spread, coherence``.
#: ``hard`` (docs/design.md section 6): weights spread 30x and components with pairwise
#: ``|cos|`` up to 0.5, the same geometry at every ``d``; plain gd needs ``m > r`` on it.
#: (30, the low end of the design's 30-100: at 100 the smallest weight's 10% criterion needs
#: fits to 1e-4, whose cost the experiments' 2-core budget cannot pay at d = 1e4.)
FAMILIES: dict[str, dict[str, Any]] = {
    "hard": {"kind": "bounded", "weights": "geometric", "spread": 30.0, "coherence": 0.5},
}
#: Draws per direction before a ``bounded`` target gives up (each succeeds with probability >= 1/3).
MAX_DRAWS = 10_000

Kind = Literal["orthonormal", "gaussian", "coherent", "bounded"]
Weights = Literal["equal", "geometric"] | Sequence[float]


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
    if kind == "bounded":
        return _bounded(dim, rank, coherence, rng)
    raise OvertensorError(f"unknown kind {kind!r}; expected one of {KINDS}")


def _bounded(dim: int, rank: int, coherence: float, rng: np.random.Generator) -> np.ndarray:
    """``(r, d)`` unit vectors with pairwise ``|cos| <= coherence`` in a random ``r``-dimensional subspace.

    Each is drawn uniformly on the unit sphere of ``R^r`` until it keeps ``|cos| <= coherence``
    with those before it, then all are embedded by a random orthonormal ``(d, r)`` basis: the
    Gram matrix, hence the geometry, does not depend on ``d``.
    """
    if not 0 < coherence < 1:
        raise OvertensorError(f"a bounded target needs coherence in (0, 1), got {coherence}")
    if rank > dim:
        raise OvertensorError(f"a bounded target needs rank <= dim, got rank {rank} > dim {dim}")
    B = np.zeros((rank, rank))
    for j in range(rank):
        for _ in range(MAX_DRAWS):
            b = rng.standard_normal(rank)
            b /= np.linalg.norm(b)
            if j == 0 or np.abs(B[:j] @ b).max() <= coherence:
                break
        else:
            raise OvertensorError(f"could not draw {rank} directions with pairwise |cos| <= {coherence}")
        B[j] = b
    Q, R = np.linalg.qr(rng.standard_normal((dim, rank)))
    return B @ (Q * np.sign(np.diag(R))).T


def make_target(
    dim: int,
    rank: int,
    order: int = 3,
    *,
    kind: Kind = "orthonormal",
    weights: Weights = "equal",
    spread: float = 10.0,
    coherence: float = 0.5,
    family: str | None = None,
    seed: int = 0,
) -> SymCP:
    """A random rank-``r`` symmetric tensor with unit components.

    Parameters
    ----------
    dim, rank, order : int
        ``d``, ``r`` and ``l``.
    kind : {"orthonormal", "gaussian", "coherent", "bounded"}
        Orthonormal directions (needs ``r <= d``), independent uniform random
        unit vectors, unit vectors with every pairwise cosine equal to
        ``coherence`` (needs ``r + 1 <= d``), or random unit vectors with pairwise
        ``|cos| <= coherence`` in a random ``r``-dimensional subspace (needs ``r <= d``).
    weights : "equal", "geometric" or a sequence of ``r`` positive numbers
        ``geometric`` spaces the weights evenly in log scale from 1 down to ``1/spread``.
    family : {"hard"}, optional
        A named preset (:data:`FAMILIES`) of ``kind``, ``weights``, ``spread`` and
        ``coherence``; giving one of those with a value other than its default as well is an error.
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
    if family is not None:
        kind, weights, spread, coherence = _family(family, kind=kind, weights=weights, spread=spread,
                                                   coherence=coherence)
    c = _weights(weights, rank, spread)
    rng = np.random.default_rng(check_seed(seed))
    A = _directions(kind, dim, rank, coherence, rng)
    return SymCP(c, A, order)


def _family(name: str, **given: Any) -> tuple[Any, Any, Any, Any]:
    """The preset ``(kind, weights, spread, coherence)`` of family ``name``; arguments off their defaults clash."""
    if name not in FAMILIES:
        raise OvertensorError(f"unknown target family {name!r}; expected one of {', '.join(FAMILIES)}")
    defaults = {"kind": "orthonormal", "weights": "equal", "spread": 10.0, "coherence": 0.5}
    preset = FAMILIES[name]
    for key, value in given.items():
        if value != defaults[key] and value != preset[key]:
            raise OvertensorError(f"family {name!r} sets {key} to {preset[key]!r}; got {key}={value!r} as well")
    return preset["kind"], preset["weights"], preset["spread"], preset["coherence"]


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
