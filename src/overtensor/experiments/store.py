"""The result store: one SQLite file, one row per finished run.

A run's identity is ``(key, seed)``: ``key`` hashes its full config
(:attr:`RunConfig.key`), so rerunning a spec skips what is stored. Only the
sweep's parent process writes; each finished task is committed in one
transaction (WAL journal), so a sweep killed at any moment, SIGKILL included,
keeps every committed run and a restart neither loses nor repeats one.

The file is marked as a store by SQLite's header fields ``application_id``
(:data:`APPLICATION_ID`) and ``user_version`` (:data:`FORMAT`); any other
database is refused without being written to. A store written before the
marker (the same tables, unmarked) is read as it is and marked when a sweep
opens it.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import OvertensorError
from ..result import History

__all__ = ["Store", "RunRecord", "compact_history", "APPLICATION_ID", "FORMAT"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key            TEXT    NOT NULL,  -- hash of config
    seed           INTEGER NOT NULL,
    spec           TEXT    NOT NULL,  -- name of the spec that ran it
    experiment     TEXT    NOT NULL,
    label          TEXT    NOT NULL,
    method         TEXT    NOT NULL,
    components     INTEGER NOT NULL,
    config         TEXT    NOT NULL,  -- JSON of the RunConfig
    status         TEXT    NOT NULL,  -- 'ok', or 'error' (the method raised, e.g. diverged)
    error          TEXT,
    relative_error REAL,
    converged      INTEGER,
    steps          INTEGER,
    seconds        REAL,              -- solve time of the call (shared by its batch)
    metrics        TEXT    NOT NULL,  -- JSON: the result's summary, method extras included
    history        TEXT,              -- JSON {column: [values]}, subsampled
    versions       TEXT    NOT NULL,  -- JSON {package: version}
    batch          INTEGER NOT NULL,  -- runs solved together in one call
    wall_seconds   REAL    NOT NULL,  -- the whole task, target construction included
    finished_at    TEXT    NOT NULL,  -- UTC, ISO 8601
    PRIMARY KEY (key, seed)
);
CREATE TABLE IF NOT EXISTS specs (
    name       TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    body       TEXT NOT NULL          -- JSON of the validated spec, defaults filled in
);
"""

#: ``PRAGMA application_id`` of an overtensor store (the bytes "OvTS"): what marks a SQLite file as one.
APPLICATION_ID = 0x4F765453
#: ``PRAGMA user_version``: the store's layout; a store with a larger one was written by a newer overtensor.
FORMAT = 1

_COLUMNS = ("key", "seed", "spec", "experiment", "label", "method", "components", "config", "status", "error",
            "relative_error", "converged", "steps", "seconds", "metrics", "history", "versions", "batch",
            "wall_seconds", "finished_at")


class RunRecord(NamedTuple):
    """A finished run as a worker returns it; JSON columns are already plain Python."""

    key: str
    seed: int
    spec: str
    experiment: str
    label: str
    method: str
    components: int
    config: dict[str, Any]
    status: str
    error: str | None
    relative_error: float | None
    converged: bool | None
    steps: int | None
    seconds: float | None
    metrics: dict[str, Any]
    history: dict[str, list] | None
    versions: dict[str, str]
    batch: int
    wall_seconds: float
    finished_at: str


def _finite(x: Any) -> Any:
    """Floats rounded to 6 significant digits (history precision), non-finite ones as None."""
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return float(f"{x:.6g}") if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def compact_history(history: History, max_rows: int) -> dict[str, list]:
    """At most ``max_rows`` rows of ``history`` (first and last kept), as JSON-ready columns.

    Half the rows are evenly spaced, half geometrically spaced in the row index: a fit that takes
    tens of steps out of a budget of thousands keeps its first steps resolved.
    """
    n = len(history)
    if n <= max_rows:
        keep = np.arange(n)
    else:
        even = np.linspace(0, n - 1, max_rows - max_rows // 2)
        early = np.geomspace(1, n, max_rows // 2) - 1
        keep = np.unique(np.concatenate([even, early]).round().astype(int))
    return {name: [_finite(v) for v in np.asarray(history[name])[keep].tolist()] for name in history.names}


def _clean(value: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, non-finite floats to None (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _dumps(value: Any) -> str:
    return json.dumps(_clean(value), separators=(",", ":"), allow_nan=False)


class Store:
    """A SQLite file of finished runs.

    Parameters
    ----------
    path : the ``.db`` file
    create : create it if missing; otherwise a missing file is an error (for readers)
    """

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise OvertensorError(f"no result store at {self.path}")
        if create and not self.path.parent.is_dir():
            raise OvertensorError(f"cannot create {self.path}: folder {self.path.parent} does not exist")
        if self.path.exists() and not self.path.is_file():
            raise OvertensorError(f"{self.path} is not an overtensor result store: not a file")
        new = not self.path.exists()
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0)
        except sqlite3.Error as exc:
            raise OvertensorError(f"cannot {'create' if new else 'open'} {self.path}: {exc}") from None
        try:
            kind = _identify(self._db)
            if kind == "empty" and not create:
                raise sqlite3.DatabaseError("an empty database")
            if create and kind != "store":  # a new file, or a store written before the marker existed
                self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self._db.execute(f"PRAGMA user_version = {FORMAT}")
            if create:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if new:  # e.g. a read-only folder
                raise OvertensorError(f"cannot create {self.path}: {exc}") from None
            raise OvertensorError(f"{self.path} is not an overtensor result store: {exc}") from None
        except OvertensorError as exc:
            self._db.close()
            raise OvertensorError(f"{self.path}: {exc}") from None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def done(self) -> set[tuple[str, int]]:
        """The ``(key, seed)`` pairs already stored."""
        return set(self._db.execute("SELECT key, seed FROM runs"))

    def spec_runs(self, name: str) -> set[tuple[str, int]]:
        """The ``(key, seed)`` pairs stored by sweeps of the spec called ``name``."""
        return set(self._db.execute("SELECT key, seed FROM runs WHERE spec = ?", (name,)))

    def add(self, records: Iterable[RunRecord]) -> int:
        """Store records in one transaction; a ``(key, seed)`` already present is kept. Returns rows added."""
        rows = [_encode(r) for r in records]
        with self._db:
            before = self._db.total_changes
            self._db.executemany(
                f"INSERT OR IGNORE INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                rows)
            return self._db.total_changes - before

    def save_spec(self, name: str, experiment: str, body: Mapping[str, Any]) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO specs VALUES (?, ?, ?)", (name, experiment, _dumps(body)))

    def specs(self) -> dict[str, dict[str, Any]]:
        """Spec name -> the validated spec as saved by the last sweep."""
        return {name: json.loads(body) for name, body in self._db.execute("SELECT name, body FROM specs")}

    def records(self, *, history: bool = True) -> Iterator[RunRecord]:
        """Every stored run, in insertion order."""
        cur = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM runs ORDER BY rowid")
        for row in cur:
            yield _decode(row, history)


def _identify(db: sqlite3.Connection) -> str:
    """``'store'`` (marked), ``'unmarked'`` (an overtensor store written before the marker), or ``'empty'``.

    Raises ``sqlite3.DatabaseError`` for any other database (so that nothing is added to it)
    and :class:`OvertensorError` for a store of a newer format.
    """
    app = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = sorted(name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    if app == APPLICATION_ID:
        if version > FORMAT:
            raise OvertensorError(f"store format {version} was written by a newer overtensor; this version "
                                  f"reads formats up to {FORMAT}")
        return "store"
    if app != 0:
        raise sqlite3.DatabaseError(f"SQLite application id {app:#x}")
    if not tables:
        return "empty"
    columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
    if tables == ["runs", "specs"] and tuple(columns) == _COLUMNS:
        return "unmarked"
    raise sqlite3.DatabaseError(f"an SQLite database with tables {', '.join(tables)}")


def _encode(r: RunRecord) -> tuple:
    values = r._asdict()
    for name in ("config", "metrics", "versions"):
        values[name] = _dumps(values[name])
    values["history"] = None if r.history is None else _dumps(r.history)
    values["converged"] = None if r.converged is None else int(r.converged)
    values["relative_error"] = _clean(r.relative_error)
    return tuple(values[c] for c in _COLUMNS)


def _decode(row: Sequence[Any], history: bool) -> RunRecord:
    values = dict(zip(_COLUMNS, row))
    for name in ("config", "metrics", "versions"):
        values[name] = json.loads(values[name])
    values["history"] = json.loads(values["history"]) if history and values["history"] else None
    values["converged"] = None if values["converged"] is None else bool(values["converged"])
    return RunRecord(**values)
