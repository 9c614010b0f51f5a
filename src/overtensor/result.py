"""What a decomposition returns: the learned model, a summary and its history."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OvertensorError
from .tensors.symcp import SymCP

__all__ = ["History", "DecompositionResult", "package_versions", "RESULT_FORMAT"]

#: The marker of a saved result (the ``header`` array of its ``.npz``), so that it is never
#: read as a target.
RESULT_FORMAT = "overtensor.DecompositionResult/1"


def package_versions() -> dict[str, str]:
    """Versions of overtensor, Python and the numerical packages, as a stored result records them."""
    out = {"python": platform.python_version()}
    for name in ("overtensor", "numpy", "scipy", "tensorly"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # run from a source tree that is not installed
            out[name] = "not installed"
    return out


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
    options : dict
        What the call asked for: ``seed`` and the options given (defaults are in ``info``).
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
    options: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the whole result to one ``.npz`` (atomically): model, params, history and a JSON
        header with the scalars, ``info``, ``options`` and :func:`package_versions`.

        ``overtensor.load`` refuses the file as a target; :meth:`load` reads it back.

        Examples
        --------
        >>> import numpy as np
        >>> import overtensor as ot
        >>> result = ot.decompose(ot.make_target(10, 3, 3, seed=0), 10, seed=0)
        >>> result.save("run.npz")
        >>> back = ot.DecompositionResult.load("run.npz")
        >>> back.relative_error == result.relative_error, np.array_equal(back.params, result.params)
        (True, True)
        >>> back.options == result.options, "numpy" in back.info["saved"]["versions"]
        (True, True)
        """
        from .io import atomic_write

        if Path(path).suffix != ".npz":
            raise OvertensorError(f"a result is saved as .npz, got {path}")
        header = {"format": RESULT_FORMAT, "versions": package_versions(), "history": list(self.history.names),
                  **_jsonable(self.summary()), "info": _jsonable(self.info), "options": _jsonable(self.options)}
        arrays = {"header": np.array(json.dumps(header)), "params": self.params, "weights": self.model.weights,
                  "vectors": self.model.vectors, "order": np.int64(self.model.order),
                  **{f"history_{k}": self.history[k] for k in self.history.names}}
        atomic_write(path, lambda fh: np.savez(fh, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "DecompositionResult":
        """A result written by :meth:`save`; its header (versions included) is ``info["saved"]``."""
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"])) if "header" in data.files else {}
                if header.get("format") != RESULT_FORMAT:
                    raise OvertensorError(f"{path} is not a saved overtensor result")
                model = SymCP(data["weights"], data["vectors"], int(data["order"]))
                history = History({k: data[f"history_{k}"] for k in header["history"]})
                params = np.array(data["params"])
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise OvertensorError(f"cannot read a result from {path}: {exc}") from None
        return cls(model=model, relative_error=header["relative_error"], converged=header["converged"],
                   steps=header["steps"], seconds=header["seconds"], method=header["method"],
                   components=header["components"], history=history, params=params,
                   info={**header["info"], "saved": {"versions": header["versions"]}}, options=header["options"])

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
    """``value`` with NumPy scalars and arrays made plain Python, inside dicts and lists too."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, SymCP):
        return repr(value)  # an option such as truth= or init=: named, not stored
    return value
