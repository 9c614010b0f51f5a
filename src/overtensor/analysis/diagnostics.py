r"""What to watch along a trajectory when the truth ``T* = Σ_j c_j a_j^{⊗l}`` is known.

Pure functions of the parameters ``W (m, d)`` (masses ``s_i`` and unit
directions ``w̄_i`` as in :func:`overtensor.tensors.parameterization.model_parts`):

- :func:`correlations`: for each true direction, ``max_i <w̄_i, a_j>``
  (``|·|`` for even order, where ``-a_j`` is the same component);
- :func:`cone_masses`: for each true direction, the mass ``Σ s_i`` of the
  components inside the cone ``<w̄_i, a_j> >= cone``;
- :func:`movement`: ``‖W - W_0‖_F / ‖W_0‖_F``, small in the lazy regime;
- :func:`active_count`: components holding mass ``>= threshold``.

:func:`observer` bundles them as an ``observe(b, W)`` hook for
:class:`overtensor.solvers.descent.Recorder`, which adds the columns
``corr_j``, ``cone_mass_j`` and ``movement`` to every history row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..backend import Array, to_numpy
from ..errors import OvertensorError
from ..tensors.parameterization import model_parts
from ..tensors.symcp import SymCP

__all__ = ["correlations", "cone_masses", "movement", "active_count", "observer", "truth_list", "DEFAULT_CONE"]

#: Cosine that defines the cone around a true direction in :func:`cone_masses`.
DEFAULT_CONE = 0.9


def _alignment(W: np.ndarray, truth: SymCP, parameterization: str) -> tuple[np.ndarray, np.ndarray]:
    """``(masses (m,), A (m, r))`` with ``A_ij`` the (even order: absolute) cosine of ``w̄_i`` and ``a_j``."""
    canon = truth.normalize()
    masses, directions, _ = model_parts(np.asarray(W), truth.order, parameterization)
    A = directions @ canon.vectors.T
    return masses, (np.abs(A) if truth.order % 2 == 0 else A)


def correlations(W: np.ndarray, truth: SymCP, parameterization: str = "balanced") -> np.ndarray:
    """Best correlation of each true direction with any component.

    Parameters
    ----------
    W : (m, d) array; truth : SymCP with ``r`` components

    Returns
    -------
    (r,) array, ``max_i <w̄_i, a_j>`` (``|<w̄_i, a_j>|`` for even order)
    """
    return _alignment(W, truth, parameterization)[1].max(axis=0, initial=-1.0)


def cone_masses(W: np.ndarray, truth: SymCP, cone: float = DEFAULT_CONE,
                parameterization: str = "balanced") -> np.ndarray:
    """Mass of the components within a cone around each true direction.

    Returns
    -------
    (r,) array, ``Σ_{i : <w̄_i, a_j> >= cone} s_i`` (``|·|`` for even order)
    """
    masses, A = _alignment(W, truth, parameterization)
    return masses @ (A >= cone)


def movement(W: np.ndarray, W0: np.ndarray) -> float:
    """Relative movement ``‖W - W_0‖_F / ‖W_0‖_F``."""
    return float(np.linalg.norm(W - W0) / np.linalg.norm(W0))


def active_count(W: np.ndarray, threshold: float, order: int, parameterization: str = "balanced") -> int:
    """Number of components with mass ``>= threshold``."""
    return int(np.sum(model_parts(np.asarray(W), order, parameterization)[0] >= threshold))


def truth_list(truth: SymCP | Sequence[SymCP], size: int, dim: int, order: int) -> list[SymCP]:
    """One truth per run of a batch of ``size``: one SymCP for all, or a sequence of ``size``."""
    items = [truth] * size if isinstance(truth, SymCP) else list(truth)
    if len(items) != size:
        raise OvertensorError(f"truth: got {len(items)} tensors for a batch of {size} runs")
    for t in items:
        if not isinstance(t, SymCP) or t.order != order or t.dim != dim:
            raise OvertensorError(f"truth must be a SymCP of order {order} in dimension {dim}, got {t!r}")
    return items


def observer(truths: Sequence[SymCP], W0: np.ndarray, *, cone: float = DEFAULT_CONE,
             parameterization: str = "balanced") -> Callable[[int, Array], dict[str, float]]:
    """An ``observe(b, W_b)`` hook for the descent recorder.

    Parameters
    ----------
    truths : one SymCP per run of the batch
    W0 : (B, m, d) array, the initial parameters (for the movement)

    Returns
    -------
    callable giving ``{"corr_j": ..., "cone_mass_j": ..., "movement": ...}`` for run ``b``
    """
    W0 = np.array(W0)

    def observe(b: int, W: Array) -> dict[str, float]:
        Wb = to_numpy(W)
        corr = correlations(Wb, truths[b], parameterization)
        mass = cone_masses(Wb, truths[b], cone, parameterization)
        row = {f"corr_{j}": float(c) for j, c in enumerate(corr)}
        row.update({f"cone_mass_{j}": float(s) for j, s in enumerate(mass)})
        row["movement"] = movement(Wb, W0[b])
        return row

    return observe
