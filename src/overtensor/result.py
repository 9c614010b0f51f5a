"""What a decomposition returns: the learned model, a summary and its history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .symcp import SymCP

__all__ = ["History", "DecompositionResult"]


class History:
    """A table of equal-length columns, one row per record along a run.

    Every solver records at least ``step``, ``loss``, ``relative_error``,
    ``active`` (components holding mass) and ``seconds`` (since the start).
    """

    __slots__ = ("_columns",)

    def __init__(self, columns: Mapping[str, Sequence[float] | np.ndarray]) -> None:
        cols = {k: np.asarray(v) for k, v in columns.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise ValueError(f"history columns differ in length: { {k: len(v) for k, v in cols.items()} }")
        self._columns = cols

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, float]]) -> "History":
        names = list(rows[0]) if rows else []
        return cls({n: [r[n] for r in rows] for n in names})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._columns)

    def __len__(self) -> int:
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def to_dict(self) -> dict[str, list]:
        """Plain lists, ready for JSON or ``pandas.DataFrame``."""
        return {k: v.tolist() for k, v in self._columns.items()}

    def __repr__(self) -> str:
        return f"History({len(self)} rows: {', '.join(self.names)})"

    step = property(lambda self: self["step"])
    loss = property(lambda self: self["loss"])
    relative_error = property(lambda self: self["relative_error"])
    active = property(lambda self: self["active"])
    seconds = property(lambda self: self["seconds"])


@dataclass(frozen=True)
class DecompositionResult:
    """The outcome of :func:`overtensor.decompose`.

    Attributes
    ----------
    model : SymCP
        The learned tensor, one component per parameter row (canonical form:
        unit vectors, weights = masses).
    relative_error : float
        ``‖T - T*‖ / ‖T*‖`` at the end.
    converged : bool
        Whether ``relative_error <= tol`` was reached within the budget.
    steps : int
        Gradient (or solver) iterations taken.
    seconds : float
        Wall time of the solve.
    method : str
    components : int
        ``m``, the number of components the method was given.
    history : History
    params : (m, d) array
        The raw parameters ``W`` the model was built from.
    info : dict
        Method-specific scalars (the step size used, epochs, movement, ...).
    """

    model: SymCP
    relative_error: float
    converged: bool
    steps: int
    seconds: float
    method: str
    components: int
    history: History
    params: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of the scalars (no arrays)."""
        out: dict[str, Any] = {
            "method": self.method,
            "components": self.components,
            "relative_error": float(self.relative_error),
            "converged": bool(self.converged),
            "steps": int(self.steps),
            "seconds": float(self.seconds),
        }
        out.update({k: _jsonable(v) for k, v in self.info.items()})
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
