"""Shared pieces of the moment estimators: input checks, the noise floor of a spectrum, decomposition."""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np
from scipy import sparse

from ..api import decompose
from ..errors import OvertensorError
from ..tensors.moment import MomentTensor, moment_tensor
from ..tensors.symcp import SymCP

__all__ = ["as_moment", "check_components", "check_features", "noise_floor_rank", "check_seed", "descend",
           "NotNumericError"]


class NotNumericError(OvertensorError, TypeError):
    """Samples whose entries are not numbers (also a ``TypeError``, as NumPy's own conversion error)."""


def _in_memory(X: object) -> np.ndarray | None:
    """An in-memory input as an ndarray (a memmap stays one); None for a path or a dask.array."""
    if isinstance(X, (str, os.PathLike)) or hasattr(X, "to_delayed"):
        return None
    if sparse.issparse(X):
        raise OvertensorError(f"sparse input is not supported; pass a dense (n, d) array, got {type(X).__name__}")
    arr = X if isinstance(X, np.ndarray) else None
    if arr is None:
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise OvertensorError(f"samples must be a real (n, d) array: {exc}") from None
    if np.iscomplexobj(arr):
        raise OvertensorError(f"Complex data not supported: samples have dtype {arr.dtype}")
    if arr.dtype == object:
        try:
            arr = np.asarray(arr, dtype=np.float64)
        except TypeError as exc:
            raise NotNumericError(f"samples must be numbers: {' '.join(str(exc).split())}") from None
        except ValueError as exc:
            raise OvertensorError(f"samples must be numbers: {' '.join(str(exc).split())}") from None
    return arr


def as_moment(X: object, order: int, chunk_size: int | None, min_features: int = 1) -> MomentTensor:
    """The implicit moment of samples ``X (n, d)`` (array-like, memmap, ``.npy`` path or dask.array).

    Everything :func:`overtensor.moment_tensor` refuses (not 2-D, under 2 rows,
    NaN/Inf, a non-numeric dtype), sparse and complex input, and fewer than
    ``min_features`` columns are one-line :class:`OvertensorError` s.
    """
    arr = _in_memory(X)
    if arr is not None:
        X = arr
        if arr.ndim == 2 and arr.shape[0] < 2:
            raise OvertensorError(f"samples must hold at least 2 rows, got n_samples = {arr.shape[0]}")
        if arr.ndim == 2 and arr.shape[1] < min_features:
            raise OvertensorError(f"{arr.shape[1]} feature(s) (shape={arr.shape}) while a minimum of "
                                  f"{min_features} is required (n_features = {arr.shape[1]})")
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
    count = int(value)
    if count < 1:
        raise OvertensorError(f"n_components must be >= 1, got {count}")
    top = dim - 1 if below_dim else dim
    if count > top:
        rel = "< d" if below_dim else "<= d"
        raise OvertensorError(f"n_components must be {rel} = {dim} for this model, got {count}")
    return count


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise OvertensorError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def check_features(X: object, dim: int, name: str) -> np.ndarray:
    """``X`` as a finite float64 ``(n, d)`` array with ``d`` the fitted dimension, else a one-line error."""
    arr = _in_memory(X)
    if arr is None:
        raise OvertensorError(f"X must be an in-memory (n, {dim}) array, got {type(X).__name__}")
    if arr.ndim != 2:
        raise OvertensorError(f"X must be a 2-d (n, {dim}) array, got shape {arr.shape}. Reshape your data: "
                              "X.reshape(1, -1) for one sample")
    if arr.shape[1] != dim:
        raise OvertensorError(f"X has {arr.shape[1]} features, but {name} is expecting {dim} features as input")
    if arr.shape[0] < 1:
        raise OvertensorError(f"X must hold at least 1 row, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_):
        raise OvertensorError(f"X must be float or integer numbers, got dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise OvertensorError("X has non-finite (NaN or Inf) entries")
    return arr


def descend(target: Any, components: int, seed: int, **options: Any) -> SymCP:
    """``beyond_lazy`` on ``target``; if the default step diverges, once more with ``0.3 / ‖T‖_F``.

    The default step ``0.3 / σ`` takes ``σ`` from a power iteration, a lower bound
    that can miss the other sign of a signed target; ``‖T‖_F >= σ`` is always safe.
    """
    try:
        return decompose(target, components, "beyond_lazy", seed=seed, **options).model
    except OvertensorError as exc:
        if "diverged" not in str(exc):
            raise
    norm = target.norm() if hasattr(target, "norm") else float(np.linalg.norm(target.array))
    return decompose(target, components, "beyond_lazy", seed=seed, step_size=0.3 / norm, **options).model


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
