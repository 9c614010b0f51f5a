"""`import overtensor` stays light: the heavy optional pieces load only when a method needs them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("scipy.sparse.linalg", "scipy.optimize", "matplotlib", "dask", "distributed", "tensorly", "sklearn", "pandas")


def test_import_loads_no_heavy_module():
    code = f"import sys, overtensor; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
