"""Small helpers over the array API standard (via ``array-api-compat``).

The kernels and solvers are written once against the array API, so the same
code runs on NumPy (default) and on any other compliant library (PyTorch).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import array_namespace, is_numpy_array

__all__ = ["Array", "array_namespace", "to_numpy", "row_dot"]

Array = Any  # an array of any array-API-compatible library


def to_numpy(x: Array) -> np.ndarray:
    """Copy an array of any supported library to a NumPy array."""
    if is_numpy_array(x):
        return np.asarray(x)
    if hasattr(x, "detach"):  # torch: leave autograd and the device behind
        x = x.detach().cpu()
    return np.asarray(x)


def row_dot(a: Array, b: Array) -> Array:
    """Row-wise inner products: ``(..., m, d), (..., m, d) -> (..., m)``."""
    xp = array_namespace(a, b)
    return xp.sum(a * b, axis=-1)
