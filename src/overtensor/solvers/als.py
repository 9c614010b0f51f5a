r"""CP-ALS baseline through TensorLy (``tensorly.decomposition.parafac``).

ALS fits a *non-symmetric* rank-``m`` CP model ``[[λ; A^{(1)}, ..., A^{(l)}]]``
to the dense target, one factor at a time. Its reconstruction is then
symmetrized exactly, which is an orthogonal projection onto symmetric tensors
(``T*`` is symmetric), so it can only lower the error; the model is that
symmetrized reconstruction, written as a SymCP by the polarization identity

    sym(a_1 ⊗ ... ⊗ a_l) = 1 / (2^{l-1} l!) Σ_{ε ∈ {±1}^{l-1}} ε_2 ⋯ ε_l (a_1 + ε_2 a_2 + ... + ε_l a_l)^{⊗l},

``2^{l-1}`` symmetric rank-one terms per CP component. ``relative_error`` is
``‖T* - sym(CP)‖ / ‖T*‖`` (= ``model.distance(target) / ‖T*‖``) and
``info["cp_error"]`` the plain ALS error ``‖T* - CP‖ / ‖T*‖``. A factored
target is densified when small enough.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..tensors.dense import symmetrize
from ..errors import OvertensorError
from ..result import DecompositionResult, History
from ..tensors.symcp import SymCP
from .problem import Problem

__all__ = ["polarize", "solve_batch"]


def polarize(weights: np.ndarray, factors: Sequence[np.ndarray]) -> SymCP:
    """The symmetrization of the CP tensor ``[[λ; A^{(1)}, ..., A^{(l)}]]`` as a SymCP.

    Parameters
    ----------
    weights : (r,) array
    factors : ``l`` arrays of shape (d, r), TensorLy's layout

    Returns
    -------
    SymCP with ``2^{l-1} r`` components (polarization identity above).
    """
    l = len(factors)
    vectors, coefs = [], []
    for signs in itertools.product((1.0, -1.0), repeat=l - 1):
        eps = np.array((1.0,) + signs)
        vectors.append(sum(e * A.T for e, A in zip(eps, factors)))  # (r, d)
        coefs.append(np.prod(eps) * weights / (2 ** (l - 1) * math.factorial(l)))
    return SymCP(np.concatenate(coefs), np.concatenate(vectors), l)


def _dense(problem: Problem, b: int) -> np.ndarray:
    try:
        return problem.targets[b].to_dense()
    except OvertensorError as exc:
        raise OvertensorError(f"als needs a dense target: {exc}") from None


def solve_batch(
    problem: Problem,
    *,
    max_iter: int,
    als_tol: float,
    als_init: str,
    tol: float,
    progress: Callable[[int], None] | None = None,
) -> list[DecompositionResult]:
    """Rank-``m`` CP-ALS (TensorLy) on each dense target, seeded by the run's seed.

    The options (``max_iter`` ALS sweeps, TensorLy's ``n_iter_max``; ``als_tol``, its ``tol``;
    ``als_init``; ``tol`` for ``converged``) are validated, defaults filled in, by
    :class:`overtensor.solvers.options.ALS`. ``als_init="random"`` uses the seed; ``svd`` is
    the stronger peer on dense low-rank targets (docs/benchmarks-peers.md: 1e-8 in 89 of 90
    runs, ``random`` in none within 500 sweeps), so compare against it there.

    Returns
    -------
    One result per run; ``params`` are the (non-symmetric) factors stacked
    ``(l, m, d)``, the CP weights folded into the first; the history holds TensorLy's ALS error ``‖T* - CP‖/‖T*‖`` per sweep.
    """
    return [_one_run(problem, b, seed, max_iter=max_iter, als_tol=als_tol, als_init=als_init, tol=tol,
                     progress=progress) for b, seed in enumerate(problem.seeds)]


def _one_run(problem: Problem, b: int, seed: int, *, max_iter: int, als_tol: float, als_init: str, tol: float,
             progress: Callable[[int], None] | None) -> DecompositionResult:
    """Run ``b`` of :func:`solve_batch`: TensorLy's ``parafac`` with a history row per sweep."""
    from tensorly import cp_to_tensor
    from tensorly.decomposition import parafac

    dense = _dense(problem, b)
    norm = math.sqrt(float(problem.target_sq[b]))
    start = time.perf_counter()
    rows: list[dict[str, float]] = []

    def record(_cp: object, error: float) -> None:  # TensorLy calls this at the start and after each sweep
        rows.append({"step": len(rows), "loss": 0.5 * (float(error) * norm) ** 2,
                     "relative_error": float(error), "active": problem.components,
                     "seconds": time.perf_counter() - start})
        if progress is not None and len(rows) > 1:
            progress(1)

    try:
        cp = parafac(dense, problem.components, n_iter_max=max_iter, init=als_init, tol=als_tol,
                     random_state=seed, normalize_factors=True, callback=record)
    except np.linalg.LinAlgError as exc:  # rank above the target's: the normal equations go singular
        raise OvertensorError(
            f"ALS failed at rank {problem.components} ({exc}); try fewer components") from None
    seconds = time.perf_counter() - start
    weights, factors = np.asarray(cp.weights), [np.asarray(A) for A in cp.factors]
    reconstruction = cp_to_tensor(cp)
    # from the arrays, not the polarized model: no cancellation near a perfect fit
    rel = float(np.linalg.norm(dense - symmetrize(reconstruction)) / norm)
    cp_error = float(np.linalg.norm(dense - reconstruction) / norm)
    return DecompositionResult(
        model=polarize(weights, factors).normalize(), relative_error=rel, converged=rel <= tol, steps=len(rows) - 1,
        seconds=seconds, method="als", components=problem.components, history=History.from_rows(rows),
        params=np.stack([factors[0].T * weights[:, None]] + [A.T for A in factors[1:]]),
        info={"cp_error": cp_error, "als_init": als_init},
    )
