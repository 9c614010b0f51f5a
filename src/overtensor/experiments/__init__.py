"""Experiments: YAML specs, resumable sweeps into a SQLite store, results tables and reports."""

from __future__ import annotations

from .spec import Run, RunConfig, Spec, load_spec, parse_spec

__all__ = ["Spec", "Run", "RunConfig", "load_spec", "parse_spec"]
