"""Solvers: one module per method, all over the one objective in ``overtensor.solvers.objective``.

Each method module exposes ``solve_batch(problem, **options) -> list[DecompositionResult]``;
``overtensor.decompose`` and ``overtensor.decompose_batch`` dispatch through :data:`METHODS`.
The gradient methods share one loop, :func:`overtensor.solvers.descent.descend`, shaped by its
hooks (epochs, a ``λ`` schedule, a refresh between epochs, a stopping rule), and the toolkit
around it in :mod:`overtensor.solvers.base` (defaults, the seeded start, result packaging).
"""

from __future__ import annotations

from . import als, beyond_lazy, gd, lazy, lazy_gd, newton, power

__all__ = ["METHODS"]

METHODS = {
    "gd": gd.solve_batch,
    "beyond_lazy": beyond_lazy.solve_batch,
    "lazy": lazy.solve_batch,
    "lazy_gd": lazy_gd.solve_batch,
    "power": power.solve_batch,
    "als": als.solve_batch,
    "polish": newton.solve_batch,
}
