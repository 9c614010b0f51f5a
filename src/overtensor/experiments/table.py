"""The store as a tidy table: one row per run, config fields flattened into columns.

Columns: the run's identity (``spec, experiment, label, method, components,
seed, key``), its target (``dim, rank, order, kind, weights, spread,
coherence, target_seed``), its options (``opt_<name>``), its status and
metrics (``relative_error, converged, steps, seconds`` and the method's
extras), and provenance (``batch, wall_seconds, finished_at, version_<package>``).
Histories are left out (see :meth:`Store.records`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import OvertensorError
from .store import RunRecord, Store

__all__ = ["tidy", "write_table", "load_results", "FORMATS"]

FORMATS = ("csv", "json", "parquet")


def tidy(records: Iterable[RunRecord]) -> list[dict[str, Any]]:
    """One flat dict per run; every row has the same keys (missing values are None)."""
    rows = [_flatten(r) for r in records]
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return [{c: row.get(c) for c in columns} for row in rows]


def load_results(store: str | Path | Store, *, history: bool = False) -> Any:
    """The runs of a store as a pandas ``DataFrame``.

    Parameters
    ----------
    store : a store's path, or an open :class:`Store`
    history : False: one row per run, the columns of :func:`tidy`; True: the histories
        in long format, one row per history row of every run: ``key, seed, spec,
        experiment, label, method, components``, then the history's columns (``step,
        loss, relative_error, active, seconds`` and any recorded extras; absent ones NaN)

    Examples
    --------
    A sweep of 2 x 2 runs, in-process (``overtensor sweep spec.yaml --store runs.db`` does the same):

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> from overtensor.experiments import Store, load_results, parse_spec, sweep
    >>> spec = parse_spec({"name": "demo", "experiment": "demo", "seeds": 2, "runs": [
    ...     {"target": {"dim": 10, "rank": 2, "order": 3}, "method": "gd", "components": [4, 6]}]})
    >>> with Store("runs.db", create=True) as store, ThreadPoolExecutor(1) as pool:
    ...     outcome = sweep(spec, store, pool)
    >>> table = load_results("runs.db")
    >>> len(table), table.groupby("components").converged.all().tolist()
    (4, [True, True])
    >>> {"dim", "rank", "method", "seed", "relative_error", "steps"} <= set(table.columns)
    True
    >>> steps = load_results("runs.db", history=True)      # every run's history
    >>> steps.groupby(["key", "seed"]).ngroups, "relative_error" in steps   # rows of 4 runs
    (4, True)
    """
    import pandas as pd

    if not isinstance(store, Store):
        with Store(store) as opened:
            return load_results(opened, history=history)
    if not history:
        return pd.DataFrame(tidy(store.records(history=False)))
    frames = [pd.DataFrame({"key": r.key, "seed": r.seed, "spec": r.spec, "experiment": r.experiment,
                            "label": r.label, "method": r.method, "components": r.components, **r.history})
              for r in store.records(history=True) if r.history]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _flatten(r: RunRecord) -> dict[str, Any]:
    target = dict(r.config["target"])
    target["target_seed"] = target.pop("seed")
    if isinstance(target["weights"], list):
        target["weights"] = json.dumps(target["weights"])
    row: dict[str, Any] = dict(spec=r.spec, experiment=r.experiment, label=r.label, method=r.method,
                               components=r.components, seed=r.seed, key=r.key, **target)
    row.update({f"opt_{k}": v for k, v in r.config["options"].items()})
    row.update(status=r.status, error=r.error, relative_error=r.relative_error, converged=r.converged,
               steps=r.steps, seconds=r.seconds)
    for k, v in r.metrics.items():
        if k not in row:
            row[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
        elif row[k] != v:
            row[f"metric_{k}"] = v
    row.update(batch=r.batch, wall_seconds=r.wall_seconds, finished_at=r.finished_at)
    row.update({f"version_{k}": v for k, v in r.versions.items()})
    return row


def write_table(rows: list[dict[str, Any]], fmt: str, out: Path | None) -> str | None:
    """Write ``rows`` as ``fmt`` to ``out``; with ``out=None`` return the text (csv, json only)."""
    if fmt not in FORMATS:
        raise OvertensorError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise OvertensorError("parquet output needs pyarrow: pip install 'overtensor[parquet]'") from None
        if out is None:
            raise OvertensorError("parquet output needs a file: pass -o FILE")
        pq.write_table(pa.Table.from_pylist(rows), out)
        return None
    if fmt == "json":
        text = json.dumps(rows, allow_nan=False) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    if out is None:
        return text
    out.write_text(text)
    return None
