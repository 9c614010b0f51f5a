"""A batch of same-shape targets stacked for the batched kernels, and initialization."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._array import Array, Backend
from ..dense import DenseSymTensor, Tensor
from ..errors import OvertensorError
from ..kernels import DenseOp, FactoredOp, TargetOp, map_arrays
from ..symcp import SymCP

__all__ = ["Problem", "make_problem", "random_directions"]


@dataclass(frozen=True)
class Problem:
    """``B`` targets of one shape, with what every solver needs.

    targets : the user's tensors, length ``B``
    op : target operator over arrays with leading batch axis ``B``
    target_sq : (B,) array, ``‖T*‖²``
    components : ``m``
    seeds : ``B`` seeds, one per run
    """

    targets: tuple[Tensor, ...]
    op: TargetOp
    target_sq: np.ndarray
    components: int
    seeds: tuple[int, ...]

    @property
    def order(self) -> int:
        return self.targets[0].order

    @property
    def dim(self) -> int:
        return self.targets[0].dim

    @property
    def size(self) -> int:
        return len(self.targets)

    @property
    def target_norm(self) -> np.ndarray:
        return np.sqrt(self.target_sq)

    def on(self, backend: Backend) -> tuple[TargetOp, Array]:
        """``(op, target_sq)`` as arrays of ``backend`` (its library, device and dtype)."""
        return map_arrays(self.op, backend.asarray), backend.asarray(self.target_sq)


def _stack_op(targets: Sequence[Tensor]) -> TargetOp:
    first = targets[0]
    for t in targets:
        if type(t) is not type(first) or t.shape != first.shape or (
            isinstance(t, SymCP) and t.rank != first.rank  # type: ignore[union-attr]
        ):
            raise OvertensorError(
                f"a batch needs targets of one type and shape; got {first!r} and {t!r}"
            )
    if isinstance(first, SymCP):
        return FactoredOp(
            np.stack([t.weights for t in targets]),  # type: ignore[union-attr]
            np.stack([t.vectors for t in targets]),  # type: ignore[union-attr]
            first.order,
        )
    return DenseOp(np.stack([t.array for t in targets]), first.order)  # type: ignore[union-attr]


def make_problem(targets: Sequence[Tensor], components: int, seeds: Sequence[int]) -> Problem:
    if not targets:
        raise OvertensorError("no targets given")
    for t in targets:
        if not isinstance(t, (SymCP, DenseSymTensor)):
            raise OvertensorError(f"target must be a SymCP or DenseSymTensor, got {type(t).__name__}")
    if isinstance(components, bool) or not isinstance(components, (int, np.integer)) or components < 1:
        raise OvertensorError(f"components must be an integer >= 1, got {components!r}")
    if len(seeds) != len(targets):
        raise OvertensorError(f"got {len(seeds)} seeds for {len(targets)} targets")
    op = _stack_op(targets)
    target_sq = np.asarray(op.norm_sq(), dtype=np.float64)
    if np.any(target_sq <= 0):
        raise OvertensorError("the target tensor is zero; there is nothing to decompose")
    return Problem(tuple(targets), op, target_sq, int(components), tuple(int(s) for s in seeds))


def random_directions(rng: np.random.Generator, m: int, d: int) -> np.ndarray:
    """``m`` independent uniform random unit vectors, ``(m, d)``."""
    G = rng.standard_normal((m, d))
    return G / np.linalg.norm(G, axis=1, keepdims=True)
