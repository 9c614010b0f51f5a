"""Shared pieces of the moment estimators: input checks, the noise floor of a spectrum, decomposition."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..errors import OvertensorError
from ..moments import MomentTensor, moment_tensor

__all__ = ["as_moment", "check_components", "check_features", "noise_floor_rank", "check_seed"]


def as_moment(X: object, order: int, chunk_size: int | None) -> MomentTensor:
    """The implicit moment of samples ``X (n, d)``; a list or array-like goes through ``np.asarray``.

    Everything :func:`overtensor.moment_tensor` refuses (not 2-D, under 2 rows,
    NaN/Inf, a non-numeric dtype) is a one-line :class:`OvertensorError`.
    """
    if not isinstance(X, (str, np.ndarray)) and not hasattr(X, "to_delayed") and not hasattr(X, "__fspath__"):
        try:
            X = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise OvertensorError(f"samples must be a real (n, d) array: {exc}") from None
    if isinstance(X, np.ndarray) and np.iscomplexobj(X):
        raise OvertensorError(f"samples must be real numbers, got dtype {X.dtype}")
    return moment_tensor(X, order, chunk_size=chunk_size)


def check_components(value: Any, dim: int, *, allow_auto: bool, allow_none: bool, below_dim: bool) -> int | None:
    """``n_components`` as an int in ``[1, d)`` (``below_dim``) or ``[1, d]``; None for "auto"/None.

    Raises
    ------
    OvertensorError
        For anything else, naming the value and ``d``.
    """
    if (allow_auto and isinstance(value, str) and value == "auto") or (allow_none and value is None):
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        expected = "'auto' or an integer" if allow_auto else "None or an integer"
        raise OvertensorError(f"n_components must be {expected}, got {value!r}")
    if value < 1:
        raise OvertensorError(f"n_components must be >= 1, got {value}")
    top = dim - 1 if below_dim else dim
    if value > top:
        rel = "< d" if below_dim else "<= d"
        raise OvertensorError(f"n_components must be {rel} = {dim} for this model, got {value}")
    return int(value)


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise OvertensorError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def check_features(X: object, dim: int) -> np.ndarray:
    """``X`` as a finite float64 ``(n, d)`` array with ``d`` the fitted dimension, else a one-line error."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise OvertensorError(f"X must be a real (n, {dim}) array: {exc}") from None
    if arr.ndim != 2:
        raise OvertensorError(f"X must be a 2-d (n, {dim}) array, got shape {arr.shape}")
    if arr.shape[1] != dim:
        raise OvertensorError(f"X has {arr.shape[1]} features, but the model was fitted with {dim}")
    if arr.shape[0] < 1:
        raise OvertensorError(f"X must hold at least 1 row, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise OvertensorError("X has non-finite (NaN or Inf) entries")
    return arr


def noise_floor_rank(eigenvalues: np.ndarray, n: int, slack: float = 0.5) -> int:
    """Number of eigenvalues above the noise floor of a sample covariance, largest first.

    The smallest ``k`` such that the ``d - k`` smallest eigenvalues fit the
    Marchenko–Pastur bulk of pure noise: the ``(k+1)``-th is at most their mean
    times ``(1 + (1 + slack) sqrt((d - k) / n))²`` (the bulk's upper edge, widened
    by ``slack`` for the finite-``n`` fluctuation of that edge).

    Parameters
    ----------
    eigenvalues : (d,) array, in decreasing order
    n : int, samples
    """
    d = eigenvalues.shape[0]
    for k in range(d):
        rest = eigenvalues[k:]
        edge = np.mean(rest) * (1 + (1 + slack) * np.sqrt(rest.size / n)) ** 2
        if eigenvalues[k] <= edge:
            return k
    return d
