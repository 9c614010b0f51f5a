"""`import overtensor` stays light: the heavy optional pieces load only when a method needs them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("scipy.sparse.linalg", "scipy.optimize", "matplotlib", "dask", "distributed", "tensorly", "sklearn", "pandas")


def loaded_after(code: str, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` are in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = f"import sys\n{code}\nprint([m for m in {names!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return eval(out.stdout.strip().splitlines()[-1])


def test_import_loads_no_heavy_module():
    assert loaded_after("import overtensor", HEAVY + ("numpy", "pydantic")) == []  # the names load lazily


def test_public_names_load_no_heavy_module_nor_the_option_models():
    """Touching every public name (the whole library) still loads no optional piece; pydantic loads with a run."""
    code = "import overtensor\nfor name in overtensor.__all__:\n    getattr(overtensor, name)"
    assert loaded_after(code, HEAVY + ("pydantic",)) == []
    run = code + "\novertensor.decompose(overtensor.make_target(4, 1, 3), 2, max_steps=1)"
    assert loaded_after(run, HEAVY + ("pydantic",)) == ["pydantic"]


def test_lazy_names_are_the_defining_modules_objects():
    import overtensor as ot
    from overtensor.api import decompose
    from overtensor.tensors.symcp import SymCP

    assert ot.decompose is decompose and ot.SymCP is SymCP and ot.solvers.METHODS["gd"] is not None
    assert set(ot.__all__) <= set(dir(ot))
    import overtensor.pipeline  # binds the submodule to the package: the function stays
    from overtensor.pipeline import pipeline

    assert ot.pipeline is pipeline
