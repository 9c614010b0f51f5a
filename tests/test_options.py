"""Option values of the wrong type through the library API: one-line OvertensorError, never a TypeError."""

from __future__ import annotations

import pytest

import overtensor as ot
from overtensor.api import coerce_options

# every option annotated ``float`` of every method (the solvers' signatures, listed by hand)
FLOAT_OPTIONS = [
    ("gd", "step_size"), ("gd", "init_scale"), ("gd", "reg"), ("gd", "tol"),
    ("lazy_gd", "alpha"), ("lazy_gd", "step_size"), ("lazy_gd", "init_scale"), ("lazy_gd", "tol"),
    ("lazy", "cg_tol"), ("lazy", "tol"),
    ("power", "power_tol"), ("power", "tol"),
    ("als", "als_tol"), ("als", "tol"),
    ("beyond_lazy", "step_size"), ("beyond_lazy", "init_scale"), ("beyond_lazy", "reinit_scale"),
    ("beyond_lazy", "reg"), ("beyond_lazy", "epoch_growth"), ("beyond_lazy", "final_below"),
    ("beyond_lazy", "merge_cos"), ("beyond_lazy", "tol"),
]


@pytest.fixture(scope="module")
def target() -> ot.SymCP:
    return ot.make_target(5, 2, 3, seed=0)


@pytest.mark.parametrize("method,name", FLOAT_OPTIONS, ids=[f"{m}-{n}" for m, n in FLOAT_OPTIONS])
@pytest.mark.parametrize("value", ["abc", [1e-3], True], ids=["str", "list", "bool"])
def test_non_number_is_one_line_error(target, method, name, value):
    with pytest.raises(ot.OvertensorError, match=rf"^{name} of method '{method}' must be a number, got "):
        ot.decompose(target, 4, method, **{name: value})


def test_decompose_tol_x(target):
    with pytest.raises(ot.OvertensorError, match="tol of method 'gd' must be a number, got 'x'"):
        ot.decompose(target, 4, tol="x")


def test_numeric_string_is_the_number(target):
    """YAML 1.1 reads ``1e-3`` as a string; it means the number: same run, bit for bit."""
    as_text = ot.decompose(target, 8, tol="1e-3", step_size="0.2", seed=1)
    as_number = ot.decompose(target, 8, tol=1e-3, step_size=0.2, seed=1)
    assert as_text.steps == as_number.steps
    assert as_text.relative_error == as_number.relative_error
    assert coerce_options("beyond-lazy", {"merge_cos": "0.9", "max_epochs": 3}) == {"merge_cos": 0.9, "max_epochs": 3}


def test_solver_called_directly_checks_too(target):
    from overtensor.solvers import gd
    from overtensor.solvers.problem import make_problem

    with pytest.raises(ot.OvertensorError, match=r"^tol must be a number, got 'x'$"):
        gd.solve_batch(make_problem([target], 4, [0]), tol="x")
