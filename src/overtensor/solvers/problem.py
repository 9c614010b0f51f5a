"""A batch of same-shape targets stacked for the batched kernels, and initialization."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import numpy as np

from ..backend import Array, Backend, get_backend
from ..errors import OvertensorError
from ..tensors.corrections import CorrectionG, CorrectionS, TensorSum
from ..tensors.dense import DenseSymTensor, Tensor
from ..tensors.kernels import DenseOp, FactoredOp, TargetOp, map_arrays, row_norms
from ..tensors.moment import MomentOp, MomentTensor
from ..tensors.symcp import SymCP

__all__ = ["Problem", "Target", "make_problem", "power_iterations", "random_directions", "run_rng",
           "spectral_norm_estimate"]

#: The tensor types a problem is made of (:func:`~overtensor.tensors.convert.as_target` converts the rest).
Target = SymCP | DenseSymTensor | MomentTensor | TensorSum | CorrectionS | CorrectionG

T = TypeVar("T")

# Solvers draw from a stream of their own, so that ``decompose(make_target(..., seed=s), m,
# seed=s)`` does not start from the target's own directions (both would read default_rng(s)).
_SOLVER_STREAM = 0x0F7E


def run_rng(seed: int) -> np.random.Generator:
    """The generator of every random draw a solver makes for the run with this seed."""
    return np.random.default_rng([_SOLVER_STREAM, seed])


@dataclass(frozen=True)
class Problem:
    """``B`` targets of one shape, with what every solver needs.

    targets : the user's tensors, length ``B``
    op : target operator over arrays with leading batch axis ``B``
    target_sq : (B,) array, ``‖T*‖²``
    components : ``m``
    seeds : ``B`` seeds, one per run
    backend, device, dtype : where the gradient methods' loops run (:attr:`arrays`); the
        problem itself is built and seeded in NumPy float64
    """

    targets: tuple[Target, ...]
    op: TargetOp
    target_sq: np.ndarray
    components: int
    seeds: tuple[int, ...]
    backend: str = "numpy"
    device: str | None = None
    dtype: str = "float64"

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

    @cached_property
    def spectral_norm(self) -> np.ndarray:
        """(B,) estimate of ``max_{‖x‖=1} |T*(x^{⊗l})|``, which sets the largest stable step."""
        return spectral_norm_estimate(self.op, self.dim)

    @cached_property
    def arrays(self) -> Backend:
        """The array library, device and dtype of :attr:`backend`, :attr:`device`, :attr:`dtype`."""
        return get_backend(self.backend, self.device, self.dtype)

    def on(self, backend: Backend | None = None) -> tuple[TargetOp, Array]:
        """``(op, target_sq)`` as arrays of ``backend`` (default: the problem's :attr:`arrays`)."""
        backend = self.arrays if backend is None else backend
        return map_arrays(self.op, backend.asarray), backend.asarray(self.target_sq)


def _all(kind: type[T], targets: Sequence[Target]) -> list[T]:
    """``targets`` typed as ``kind``, which :func:`_stack_op` checked every one of them is."""
    return [t for t in targets if isinstance(t, kind)]


def _stack_op(targets: Sequence[Target]) -> TargetOp:
    first = targets[0]
    for t in targets:
        if type(t) is not type(first) or t.shape != first.shape or (
            isinstance(t, SymCP) and isinstance(first, SymCP) and t.rank != first.rank
        ):
            raise OvertensorError(
                f"a batch needs targets of one type and shape; got {first!r} and {t!r}"
            )
    if isinstance(first, MomentTensor):
        moments = _all(MomentTensor, targets)
        if any(t.samples is not first.samples for t in moments):
            raise OvertensorError("a batch of moment targets must share one data set (pass one MomentTensor)")
        # one pass over the shared samples contracts every run's rows
        norms = np.array([t.norm_sq() for t in moments])
        return MomentOp(first.samples, norms, first.order)
    if isinstance(first, (TensorSum, CorrectionS, CorrectionG)):
        if any(t is not first for t in targets):
            raise OvertensorError(f"a batch of {type(first).__name__} targets must repeat one target")
        return map_arrays(first.op, lambda x: np.repeat(x, len(targets), axis=0))  # batch axis 1 -> B
    if isinstance(first, SymCP):
        # C order, as every array a shrinking batch takes out (see _validate.as_float_array)
        cps = _all(SymCP, targets)
        return FactoredOp(
            np.ascontiguousarray(np.stack([t.weights for t in cps])),
            np.ascontiguousarray(np.stack([t.vectors for t in cps])),
            first.order,
        )
    return DenseOp(np.ascontiguousarray(np.stack([t.array for t in _all(DenseSymTensor, targets)])), first.order)


def make_problem(targets: Sequence[Tensor], components: int, seeds: Sequence[int], *, backend: str = "numpy",
                 device: str | None = None, dtype: str = "float64") -> Problem:
    """The :class:`Problem` of ``B`` targets, one seed each, with the arrays' ``backend``, ``device``, ``dtype``.

    The array library is loaded (and a torch device checked) here, before any solver starts.
    """
    if not targets:
        raise OvertensorError("no targets given")
    for t in targets:
        if not isinstance(t, Target):
            raise OvertensorError(
                f"cannot decompose a {type(t).__name__}: expected a SymCP, DenseSymTensor, MomentTensor, TensorSum, "
                "a symmetric NumPy array, a TensorLy CPTensor, (weights, factors) or (weights, vectors, order)")
    if isinstance(components, bool) or not isinstance(components, (int, np.integer)) or components < 1:
        raise OvertensorError(f"components must be an integer >= 1, got {components!r}")
    if len(seeds) != len(targets):
        raise OvertensorError(f"got {len(seeds)} seeds for {len(targets)} targets")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise OvertensorError(f"seed must be an integer >= 0, got {s!r}")
    op = _stack_op(targets)
    target_sq = np.asarray(op.norm_sq(), dtype=np.float64)
    if np.any(target_sq <= 0):
        raise OvertensorError("the target tensor is zero; there is nothing to decompose")
    problem = Problem(tuple(targets), op, target_sq, int(components), tuple(int(s) for s in seeds), backend,
                      device, dtype)
    problem.arrays  # noqa: B018  # a missing library or device: one line now, not inside a solver
    return problem


def random_directions(rng: np.random.Generator, m: int, d: int) -> np.ndarray:
    """``m`` independent uniform random unit vectors, ``(m, d)``."""
    G = rng.standard_normal((m, d))
    return G / np.linalg.norm(G, axis=1, keepdims=True)


def spectral_norm_estimate(op: TargetOp, dim: int, *, starts: int = 8, iterations: int = 30) -> np.ndarray:
    """``max_{‖x‖=1} |T(x^{⊗l})|`` estimated by the tensor power iteration from a few starts.

    ``x ← T(x^{⊗(l-1)}, ·) / ‖T(x^{⊗(l-1)}, ·)‖`` from ``starts`` fixed random
    directions (the same for every target, so a batch equals its single runs);
    the estimate is the best ``|T(x^{⊗l})|`` found, a lower bound that is tight
    for low-rank targets. Cost ``starts · iterations`` contractions.

    Returns
    -------
    (B,) array for an operator with batch axis ``B``.
    """
    X = random_directions(np.random.default_rng([_SOLVER_STREAM + 1]), starts, dim)
    X = np.broadcast_to(X, (*np.shape(op.norm_sq()), starts, dim))
    X, _ = power_iterations(op, X, iterations, tol=0.0)
    values = np.abs(np.sum(np.asarray(op.contract(X)) * X, axis=-1))
    return values.max(axis=-1)


def power_iterations(op: TargetOp, X: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Run ``x ← T(x^{⊗(l-1)}, ·)/‖·‖`` on every start; a start stops moving once it converges.

    Parameters
    ----------
    op : target operator with batch axis ``B``
    X : (B, S, d) array of unit starts

    Returns
    -------
    X : (B, S, d) array; iterations : (B,) int, until every start of run ``b`` converged
    """
    active = np.ones(X.shape[:2], dtype=bool)
    iterations = np.zeros(X.shape[0], dtype=np.int64)
    every = True  # every start still moving: the masked merges below are skipped (~40% of a small iteration)
    for _ in range(max_iter):
        if not every and not active.any():
            break
        Y = np.asarray(op.contract(X))
        norms = row_norms(Y)[..., None]
        positive = norms > 0
        # T(x^{l-1}) = 0: x is a fixed point
        Y = Y / norms if positive.all() else np.where(positive, Y / np.where(positive, norms, 1.0), X)
        sign = np.where(np.add.reduce(Y * X, axis=-1, keepdims=True) < 0, -1.0, 1.0)
        change = row_norms(Y - sign * X)
        if every:
            iterations += 1
            X = Y
        else:
            iterations += active.any(axis=1)
            X = np.where(active[..., None], Y, X)
        active &= change > tol
        every = bool(active.all())
    return X, iterations
