"""The documentation's examples run: every ``Examples`` section in the package's docstrings,
and the examples on the method pages (``docs/methods/*.md``), as doctests.

The expected outputs print only what holds on any CPU (ranks, shapes, booleans such as
``err < 1e-6``, values rounded far above rounding error), so they are exact comparisons.
The site itself (mkdocs) is not needed here.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest

import overtensor

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```(?:python|pycon)\n(.*?)^```", re.M | re.S)
PAGES = sorted((DOCS / "methods").glob("*.md"))


def _with_examples(name: str) -> bool:
    return any(t.examples for t in doctest.DocTestFinder().find(importlib.import_module(name)))


# every module of the package whose docstrings hold an example (importing them all: ~2 s, once)
MODULES = [m.name for m in pkgutil.walk_packages(overtensor.__path__, "overtensor.") if _with_examples(m.name)]

# Public objects whose docstring must carry a runnable Examples section (issue 10, item 10).
REQUIRED = [
    "overtensor.decompose", "overtensor.decompose_batch", "overtensor.pipeline", "overtensor.polish",
    "overtensor.recover", "overtensor.match", "overtensor.make_target", "overtensor.add_noise",
    "overtensor.moment_tensor", "overtensor.SymCP", "overtensor.SymCP.to_dense",
    "overtensor.SymCP.normalize", "overtensor.DenseSymTensor", "overtensor.save", "overtensor.load",
    "overtensor.DecompositionResult.save", "overtensor.models.SphericalGMM", "overtensor.models.MomentICA",
    "overtensor.experiments.load_results", "overtensor.compress", "overtensor.residual_norm",
    "overtensor.SymCP.to_tensorly",
]


def _resolve(name: str) -> object:
    module, _, rest = name.partition(".")
    obj: object = importlib.import_module(module)
    for part in rest.split("."):
        obj = getattr(obj, part) if hasattr(obj, part) else importlib.import_module(f"{module}.{part}")
        module = f"{module}.{part}"
    return obj


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Examples that save files write them into a fresh folder."""
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("name", REQUIRED)
def test_required_examples_exist(name: str) -> None:
    examples = doctest.DocTestParser().get_examples(_resolve(name).__doc__ or "")
    assert examples, f"{name} has no doctest example"


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=FLAGS, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name} (output above)"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_method_page_examples(page: Path) -> None:
    # only the fenced code blocks, one namespace per page (a closing fence is not output)
    blocks = FENCE.findall(page.read_text(encoding="utf-8"))
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), {}, page.name, str(page), 0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(test)
    assert result.attempted > 0 or page.name == "index.md", f"{page.name} has no example"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {page.name}"


def _hooks() -> Any:
    """docs/hooks.py, the site's MkDocs hooks (plain Python: they need no MkDocs to import)."""
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_method_has_a_page_with_its_option_table() -> None:
    hooks = _hooks()
    for method in overtensor.methods():
        page = DOCS / "methods" / f"{method}.md"
        assert page.exists(), f"no docs page for method {method!r}"
        assert hooks.OPTIONS.findall(page.read_text(encoding="utf-8")) == [method], page.name


def test_readme_markers_name_readme_sections() -> None:
    """Each ``<!-- readme: ... -->`` marker of the site names sections the README has (else the build fails)."""
    hooks = _hooks()
    markers = [(p, m) for p in sorted(DOCS.rglob("*.md")) for m in hooks.README.findall(p.read_text(encoding="utf-8"))]
    assert markers
    for page, marker in markers:
        text = hooks.readme_sections([h.strip() for h in marker.split("|")], depth=1)
        assert text.strip() and "](docs/" not in text, page.name  # README links rebased into the site


def test_option_tables_render() -> None:
    options = pytest.importorskip("overtensor.solvers.options")  # arrives with the option declarations
    for method in overtensor.methods():
        assert options.option_table(method).lstrip().startswith("|"), method  # a Markdown table
    assert "step_size" in options.option_table("gd") and "alpha" in options.option_table("lazy_gd")


def test_option_table_stars_are_not_emphasis() -> None:
    assert _hooks().escape_stars("| ‖T(W) - T*‖ / ‖T*‖ | `a*b` |") == "| ‖T(W) - T\\*‖ / ‖T\\*‖ | `a*b` |"
