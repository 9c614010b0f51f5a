"""Input checks shared by the tensor types; each raises a one-line OvertensorError."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from .errors import OvertensorError

# Refuse to form dense arrays above this many entries (8 bytes each: 800 MB).
MAX_DENSE_ENTRIES = 10**8


def check_order(order: object) -> int:
    if isinstance(order, (bool, np.bool_)) or not isinstance(order, (int, np.integer)):
        raise OvertensorError(f"order must be an integer >= 2, got {order!r}")
    if order < 2:
        raise OvertensorError(f"order must be >= 2, got {order}")
    return int(order)


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise OvertensorError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise OvertensorError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_seed(seed: object) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OvertensorError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def as_float_array(name: str, value: ArrayLike, ndim: int) -> np.ndarray:
    """A read-only, C-contiguous float64 copy of ``value``.

    C order for every stored array: BLAS takes another code path (and rounds
    differently) for a transposed layout, so a batch, whose stacked and
    subset arrays are C-ordered, equals its single runs bit for bit only if
    the single run's arrays are C-ordered too.
    """
    if np.iscomplexobj(value):
        raise OvertensorError(f"{name} must be real, got a complex array")
    try:
        arr = np.array(value, dtype=np.float64, order="C")
    except (TypeError, ValueError) as exc:
        raise OvertensorError(f"{name} must be a real {ndim}-d array: {exc}") from None
    if arr.ndim != ndim:
        raise OvertensorError(f"{name} must be {ndim}-d, got shape {arr.shape}")
    if not np.isfinite(arr).all():  # the method, not np.all: its dispatch costs as much on a small array
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise OvertensorError(f"{name} has {bad} non-finite (NaN or Inf) entries")
    arr.setflags(write=False)
    return arr


def check_dense_size(dim: int, order: int) -> None:
    entries = dim**order
    if entries > MAX_DENSE_ENTRIES:
        raise OvertensorError(
            f"a dense tensor of order {order} in dimension {dim} has {entries:.3g} entries "
            f"(limit {MAX_DENSE_ENTRIES:.0e}); keep it factored"
        )


def dense_dim(dim: int, order: int) -> int:
    """``dim Sym^l(R^d) = C(d + l - 1, l)``."""
    return math.comb(dim + order - 1, order)


def as_points(X: object, dim: int) -> tuple[np.ndarray, bool]:
    """Points as rows ``(m, d)``, and whether a single point ``(d,)`` was given."""
    arr = np.asarray(X, dtype=np.float64)
    shape, single = arr.shape, arr.ndim == 1
    arr = np.atleast_2d(arr)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise OvertensorError(f"expected points of dimension {dim} (shape (d,) or (m, d)), got shape {shape}")
    return arr, single


def at_points(X: object, dim: int, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``fn`` on the rows ``(m, d)`` of ``X``; for one point ``(d,)``, its first row ``(...)``.

    The one-point result is ``out[0, ...]``: a 0-d array where ``fn`` gives ``(m,)``, never a
    NumPy scalar, so ``evaluate`` and ``contract`` return arrays of shape ``X.shape[:-1] + ...``.
    """
    arr, single = as_points(X, dim)
    out = fn(arr)
    return out[0, ...] if single else out
