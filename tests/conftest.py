"""Shared brute-force helpers: dense tensors built entry by entry, independent of the library."""

from __future__ import annotations

import numpy as np


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
