"""`import overtensor` stays light: the heavy optional pieces load only when a method needs them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import overtensor

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


# ----------------------------------------------------------------------------- layering
# The package's layers, lowest first. A module imports, at import time, only from layers below its
# own. A node is a subpackage (tensors, analysis, ...) or a top-level module (api, io, ...);
# "overtensor" is the package's __init__, which re-exports the API.
LAYERS = (
    ("errors",),
    ("backend", "validation"),
    ("tensors",),
    ("analysis", "result"),
    ("solvers", "io", "progress"),
    ("api",),
    ("pipeline",),
    ("overtensor",),
    ("models", "experiments", "cli"),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
#: Imports inside a function that reach a higher layer, each with its reason; nothing else may.
LAZY_UPWARD = {
    ("progress", "solvers"),  # step_budget reads the solvers' defaults when a bar is drawn
    ("result", "io"),  # DecompositionResult.save writes through io, which imports result
}
SRC = Path(overtensor.__file__).parent


class Import(NamedTuple):
    module: str  # the importing module, e.g. "overtensor.tensors.symcp"
    target: str  # the imported module
    name: str | None  # the name taken from it (``from target import name``), None for ``import target``
    lazy: bool  # inside a function: runs when called, not at import
    line: int


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(root: Path) -> list[Import]:
    """Every package-internal import under ``root``; ``if TYPE_CHECKING:`` blocks are skipped (never run)."""
    files = sorted(root.rglob("*.py"))
    modules = {_module_name(f, root) for f in files}
    found: list[Import] = []
    for path in files:
        module = _module_name(path, root)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]

        def visit(node: ast.AST, lazy: bool, module: str = module, package: str = package) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    continue
                if isinstance(child, ast.Import):
                    found.extend(Import(module, a.name, None, lazy, child.lineno) for a in child.names)
                elif isinstance(child, ast.ImportFrom):
                    parts = package.split(".")
                    base = parts[: len(parts) - child.level + 1] if child.level else []
                    target = ".".join(base + ([child.module] if child.module else []))
                    for a in child.names:  # `from package import submodule` imports that module
                        sub = f"{target}.{a.name}"
                        found.append(Import(module, sub if sub in modules else target, a.name, lazy, child.lineno))
                visit(child, lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        visit(ast.parse(path.read_text()), False)
    return [i for i in found if i.target.split(".")[0] == "overtensor"]


def _node(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "overtensor"


def _upward(imports: list[Import]) -> list[str]:
    """Import-time imports of a node from its own layer or above (an empty list: no cycle between nodes)."""
    return [f"{i.module}:{i.line} imports {i.target}" for i in imports
            if not i.lazy and _node(i.module) != _node(i.target)
            and RANK.get(_node(i.target), len(LAYERS)) >= RANK.get(_node(i.module), len(LAYERS))]


def _private(imports: list[Import], root: Path) -> list[str]:
    """Imports of a ``_name`` module or symbol from another package (subpackage, or the top level)."""
    def package(module: str) -> str:
        is_package = (root.parent / Path(*module.split("."))).is_dir()
        return module if is_package else module.rpartition(".")[0]

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    return [f"{i.module}:{i.line} imports {i.name or i.target} from {i.target}" for i in imports
            if package(i.module) != package(i.target)
            and any(private(p) for p in [*i.target.split("."), i.name or ""])]


def _cycle(imports: list[Import]) -> list[str]:
    """One import-time cycle between modules, or [] (package ``__init__`` files are modules here)."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        if not i.lazy and i.target != i.module:
            graph.setdefault(i.module, set()).add(i.target)
    state: dict[str, str] = {}  # "open" while on the path, "done" after

    def walk(module: str, path: list[str]) -> list[str]:
        if state.get(module) == "open":
            return path[path.index(module):] + [module]
        if state.get(module) == "done":
            return []
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if found := walk(target, [*path, module]):
                return found
        state[module] = "done"
        return []

    for module in sorted(graph):
        if found := walk(module, []):
            return found
    return []


def test_every_node_has_a_layer():
    imports = _imports(SRC)
    nodes = {_node(i.module) for i in imports} | {_node(i.target) for i in imports}
    assert nodes == set(RANK), sorted(nodes ^ set(RANK))


def test_import_time_imports_go_down_the_layers():
    assert _upward(_imports(SRC)) == []


def test_function_level_imports_go_up_only_where_listed():
    up = {(_node(i.module), _node(i.target)) for i in _imports(SRC)
          if i.lazy and RANK[_node(i.target)] > RANK[_node(i.module)]}
    assert up <= LAZY_UPWARD, sorted(up - LAZY_UPWARD)


def test_no_import_time_cycle_between_modules():
    assert _cycle(_imports(SRC)) == []


def test_nothing_private_is_imported_from_another_package():
    assert _private(_imports(SRC), SRC) == []


def test_the_checks_find_planted_violations(tmp_path: Path):
    """Not vacuous: an upward import, a private one across packages and a cycle, planted, are all found."""
    root = tmp_path / "overtensor"
    (root / "tensors").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "tensors" / "__init__.py").write_text("")
    (root / "tensors" / "_kept.py").write_text("from . import bad\n")  # same package: private is fine
    (root / "tensors" / "bad.py").write_text("from .. import api\nfrom ..pipeline import _join\n"
                                              "from ._kept import x\ndef f():\n    from ..cli import main\n")
    (root / "api.py").write_text("from .tensors import bad\n")
    (root / "pipeline.py").write_text("")
    (root / "cli.py").write_text("")
    imports = _imports(root)
    assert [(i.target, i.name, i.lazy) for i in imports if i.module == "overtensor.tensors.bad"] == [
        ("overtensor.api", "api", False), ("overtensor.pipeline", "_join", False),
        ("overtensor.tensors._kept", "x", False), ("overtensor.cli", "main", True)]
    assert _upward(imports) == ["overtensor.tensors.bad:1 imports overtensor.api",
                                "overtensor.tensors.bad:2 imports overtensor.pipeline"]
    assert _private(imports, root) == ["overtensor.tensors.bad:2 imports _join from overtensor.pipeline"]
    assert _cycle(imports) == ["overtensor.api", "overtensor.tensors.bad", "overtensor.api"]
