"""Solvers: one module per method, all over the one objective in ``overtensor.objective``.

Each method module exposes ``solve_batch(problem, **options) -> list[DecompositionResult]``;
``overtensor.decompose`` and ``overtensor.decompose_batch`` dispatch through :data:`METHODS`.
"""

from __future__ import annotations

from . import beyond_lazy, gd

__all__ = ["METHODS"]

METHODS = {
    "gd": gd.solve_batch,
    "beyond_lazy": beyond_lazy.solve_batch,
}
