"""Small helpers over the array API standard (via ``array-api-compat``).

The kernels and solvers are written once against the array API, so the same
code runs on NumPy (default) and on any other compliant library: PyTorch (CPU
or CUDA), or ``array-api-strict``, which tests that nothing NumPy-only slipped in.
Problems are built and seeded in NumPy, moved to the chosen library with
:func:`Backend.asarray`, and results come back with :func:`to_numpy`.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import numpy as np
from array_api_compat import array_namespace, is_array_api_obj, is_numpy_array

from .errors import OvertensorError

__all__ = ["Array", "Backend", "BACKENDS", "DTYPES", "array_namespace", "get_backend", "is_array_api_obj",
           "to_numpy", "row_dot", "matrix_transpose"]

Array = Any  # an array of any array-API-compatible library

#: ``backend=`` name -> the module giving its array API namespace.
BACKENDS: dict[str, str] = {
    "numpy": "array_api_compat.numpy",
    "torch": "array_api_compat.torch",
    "array_api_strict": "array_api_strict",
}
DTYPES: tuple[str, ...] = ("float64", "float32")


class Backend(NamedTuple):
    """Where a solver computes: an array API namespace, a device and a float dtype."""

    xp: Any
    device: Any
    dtype: Any

    def asarray(self, x: Array) -> Array:
        """``x`` as a floating array of this backend (a copy where needed)."""
        return self.xp.asarray(x, dtype=self.dtype, device=self.device)


def get_backend(name: str = "numpy", device: str | None = None, dtype: str = "float64") -> Backend:
    """The :class:`Backend` for ``backend=``, ``device=`` and ``dtype=`` options.

    Parameters
    ----------
    name : {"numpy", "torch", "array_api_strict"}
    device : str or None, e.g. ``"cuda"`` or ``"cuda:1"`` for torch; None: the library's default
    dtype : {"float64", "float32"}
    """
    if name not in BACKENDS:
        raise OvertensorError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    if dtype not in DTYPES:
        raise OvertensorError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    try:
        xp = importlib.import_module(BACKENDS[name])
    except ImportError:
        package = "array-api-strict" if name == "array_api_strict" else name
        raise OvertensorError(f"backend {name!r} needs {package}: pip install {package}") from None
    if device is not None:
        if name == "torch":
            import torch

            try:
                dev = torch.device(device)
                torch.empty(0, device=dev)
            except (RuntimeError, AssertionError) as exc:
                raise OvertensorError(f"device {device!r} is not available to torch: {exc}") from None
            return Backend(xp, dev, getattr(xp, dtype))
        if device != "cpu":
            raise OvertensorError(f"backend {name!r} runs on the CPU only, got device {device!r}")
    return Backend(xp, None, getattr(xp, dtype))


def to_numpy(x: Array) -> np.ndarray:
    """Copy an array of any supported library to a NumPy array."""
    if is_numpy_array(x):
        return np.asarray(x)
    if hasattr(x, "detach"):  # torch: leave autograd and the device behind
        return x.detach().cpu().numpy()
    return np.asarray(x)


def matrix_transpose(x: Array) -> Array:
    """``x.mT``, the transpose of the last two axes (a view); NumPy < 2 arrays lack ``.mT``.

    Cheaper than ``xp.matrix_transpose`` of array-api-compat, which matters in a
    step of a small problem (a few microseconds of Python per call).
    """
    try:
        return x.mT
    except AttributeError:
        return np.swapaxes(x, -1, -2)


def row_dot(a: Array, b: Array) -> Array:
    """Row-wise inner products: ``(..., m, d), (..., m, d) -> (..., m)`` (no ``(m, d)`` temporary)."""
    return array_namespace(a, b).vecdot(a, b, axis=-1)
