"""Shared brute-force helpers (dense tensors built entry by entry, independent of the library) and the
rounding floors every tolerance in the suite is derived from.

A tolerance must hold on any CPU: BLAS kernels (OpenBLAS picks SkylakeX on Intel Xeons, Haswell on
AMD EPYC) sum in different orders, so two runs agree only to the floors below, never bit for bit
across machines. Each ``assert_allclose`` names its floor in a comment.
"""

from __future__ import annotations

import math
import os

# No timed progress lines in the suite (nor in its subprocesses): on a loaded machine a run can take
# longer than the default 5 s, and tests compare stderr exactly. tests/test_progress.py sets its own.
os.environ["OVERTENSOR_LOG_EVERY"] = "3600"

import numpy as np
from click.testing import CliRunner

EPS = float(np.finfo(np.float64).eps)  # 2.2e-16: relative rounding of one float64 operation
EPS32 = float(np.finfo(np.float32).eps)  # 1.2e-7
# A sum of k terms of size <= S computed in two orders differs by <= k·eps·S (first-order bound).
# The squared residual ‖R‖² = Σ_i s_i [R(w̄_i^{⊗l}) - T*(w̄_i^{⊗l})] + ‖T*‖² (and SymCP.distance, and
# ‖A‖² - 2<A, B> + ‖B‖²) is such a sum with terms of size ‖T*‖²: it resolves relative errors only
# down to sqrt(eps), 1.5e-8 in float64 and 3.5e-4 in float32.
SQRT_EPS = math.sqrt(EPS)
SQRT_EPS32 = math.sqrt(EPS32)


def residual_floor(rel_error: float, terms: int, eps: float = EPS, scale: float = 1.0) -> float:
    """Absolute rounding error of a relative error ``e = ‖R‖/‖T*‖`` read off ``‖R‖²``.

    ``‖R‖²/‖T*‖²`` is a sum of ``terms`` terms of size <= 1 (first-order count; for gd's estimate
    with m components, a rank-r target in dimension d, ``2m + r + d``: m masses times sums over m
    model and r target vectors of Gram entries, each a d-term dot product of unit vectors; for
    ``SymCP.distance`` of ranks m and r, ``(m + r)² + d``), so it carries ``δ <= terms·eps``;
    then ``|sqrt(max(e² ± δ, 0)) - e| <= min(sqrt(δ), δ / e)``: ``sqrt(eps)``-sized at a zero
    residual, ``δ / e`` above it. ``scale`` is the sum of the terms' absolute values over ``‖T*‖²``
    where that exceeds 1 (a model with large cancelling parts).
    """
    delta = terms * eps * scale
    return min(math.sqrt(delta), delta / rel_error) if rel_error > 0 else math.sqrt(delta)


def outer_power(v: np.ndarray, order: int) -> np.ndarray:
    out = v
    for _ in range(order - 1):
        out = np.multiply.outer(out, v)
    return out


def dense_from(weights, vectors, order: int) -> np.ndarray:
    return sum(w * outer_power(v, order) for w, v in zip(weights, vectors))


def contract_all_but_one(T: np.ndarray, x: np.ndarray) -> np.ndarray:
    """T(x, ..., x, ·) by repeated tensordot over the first axis."""
    out = T
    for _ in range(T.ndim - 1):
        out = np.tensordot(x, out, axes=(0, 0))
    return out


def random_symmetric(d: int, order: int, rng: np.random.Generator) -> np.ndarray:
    import itertools

    A = rng.standard_normal((d,) * order)
    perms = list(itertools.permutations(range(order)))
    return sum(np.transpose(A, p) for p in perms) / len(perms)


def cli_runner() -> CliRunner:
    """A ``CliRunner`` whose results keep stderr apart from stdout, on click 8.1 and later."""
    try:
        return CliRunner(mix_stderr=False)  # click 8.1: stderr apart only when asked
    except TypeError:
        return CliRunner()  # click >= 8.2: result.stderr is always apart
