"""Experiments: YAML specs, resumable sweeps into a SQLite store, results tables and reports.

``spec`` (what to run), ``store`` (what ran), ``runner`` (running it on a
process pool or a Dask cluster), ``table`` (the store as a tidy table),
``figures`` and ``report`` (matplotlib figures and an HTML page; imported on
use, they load matplotlib).
"""

from __future__ import annotations

from .runner import sweep
from .spec import Run, RunConfig, Spec, load_spec, parse_spec
from .store import RunRecord, Store
from .table import load_results, tidy

__all__ = ["Spec", "Run", "RunConfig", "load_spec", "parse_spec", "Store", "RunRecord", "sweep", "tidy",
           "load_results"]
