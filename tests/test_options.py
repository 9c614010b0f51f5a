"""Option values of the wrong type through the library API: one-line OvertensorError, never a TypeError."""

from __future__ import annotations

import numpy as np
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


def test_solvers_take_exactly_the_model_fields_and_declare_no_default():
    """The models are the one declaration: each solver's keywords are its model's fields (but the problem's:
    backend, device, dtype, which go to make_problem), none defaulted."""
    import inspect

    from overtensor.solvers import METHODS
    from overtensor.solvers.options import MODELS, PROBLEM_OPTIONS

    assert set(MODELS) == set(METHODS) == set(ot.methods())
    for name, solver in METHODS.items():
        params = inspect.signature(solver).parameters
        keywords = [p for p in params if p not in ("problem", "progress")]
        assert sorted(keywords) == sorted(set(MODELS[name].model_fields) - set(PROBLEM_OPTIONS)), name
        assert all(params[p].default is inspect.Parameter.empty for p in keywords), name


# (method, options, the one-line message): an unknown option, a bad type, a bad value for several methods
BAD = [
    ("gd", {"bogus": 1}, ("unknown option 'bogus' for method 'gd'; expected one of tol, step_size, init_scale, "
                         "record_every, signs, backend, device, dtype, max_steps, truth, reg, parameterization, init")),
    ("power", {"max_steps": 5}, ("unknown option 'max_steps' for method 'power'; expected one of tol, n_starts, "
                                "max_iter, power_tol")),
    ("beyond-lazy", {"max_iter": 5}, "unknown option 'max_iter' for method 'beyond_lazy'; expected one of "),
    ("lazy", {"step_size": 0.1}, ("unknown option 'step_size' for method 'lazy'; expected one of tol, cg_tol, "
                                 "max_iter, record_every")),
    ("gd", {"max_steps": 2.5}, "max_steps of method 'gd' must be an integer, got 2.5"),
    ("gd", {"max_steps": "many"}, "max_steps of method 'gd' must be an integer, got 'many'"),
    ("gd", {"parameterization": "weird"}, ("parameterization of method 'gd' must be one of 'balanced', 'plain', "
                                          "got 'weird'")),
    ("beyond_lazy", {"recycle": 1}, "recycle of method 'beyond_lazy' must be true or false, got 1"),
    ("als", {"als_init": "svd2"}, "als_init of method 'als' must be one of 'random', 'svd', got 'svd2'"),
    ("power", {"n_starts": True}, "n_starts of method 'power' must be an integer, got True"),
    ("gd", {"backend": "jax2"}, ("backend of method 'gd' must be one of 'numpy', 'torch', 'array_api_strict', "
                                "got 'jax2'")),
    ("gd", {"signs": "all"}, "signs of method 'gd' must be 'half' or a list of m values +1/-1, got 'all'"),
    ("gd", {"step_size": -1.0}, "step_size of method 'gd' must be a finite number > 0, got -1.0"),
    ("gd", {"tol": float("inf")}, "tol of method 'gd' must be a finite number >= 0, got inf"),
    ("gd", {"max_steps": -3}, "max_steps of method 'gd' must be an integer >= 0, got -3"),
    ("beyond_lazy", {"merge_cos": 0.0}, ("merge_cos of method 'beyond_lazy' must be a finite number > 0 and <= 1, "
                                        "got 0.0")),
    ("beyond_lazy", {"epoch_growth": 0.9}, ("epoch_growth of method 'beyond_lazy' must be a finite number >= 1, "
                                           "got 0.9")),
    ("lazy", {"cg_tol": 1.0}, "cg_tol of method 'lazy' must be a finite number > 0 and < 1, got 1.0"),
    ("lazy_gd", {"alpha": -1}, "alpha of method 'lazy_gd' must be a finite number > 0, got -1"),
    ("power", {"max_iter": 0}, "max_iter of method 'power' must be an integer >= 1, got 0"),
    ("polish", {"ftol": -1e-3}, "ftol of method 'polish' must be a finite number >= 0, got -0.001"),
    ("beyond_lazy", {"reinit_scale": 0.2, "init_scale": 0.1},
     "method 'beyond_lazy': reinit_scale (δ1 = 0.2) must be below init_scale (δ0 = 0.1)"),
]


@pytest.mark.parametrize("method,options,message", BAD, ids=[f"{m}-{next(iter(o))}" for m, o, _ in BAD])
def test_bad_option_is_one_line_naming_method_and_option(target, method, options, message):
    with pytest.raises(ot.OvertensorError) as err:
        ot.decompose(target, 4, method, **options)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    with pytest.raises(ot.OvertensorError) as batch:
        ot.decompose_batch(target, 4, method, seeds=[0, 1], **options)
    assert str(batch.value) == str(err.value)


def test_check_options_names_the_valid_ones():
    assert ot.check_options("beyond-lazy", ["merge_cos", "truth"]) == "beyond_lazy"
    with pytest.raises(ot.OvertensorError, match=r"^unknown option 'truth' for method 'lazy_gd'; expected one of "
                                                 r"tol, step_size"):
        ot.check_options("lazy_gd", ["truth"])
    with pytest.raises(ot.OvertensorError, match=r"^unknown method 'sgd'; expected one of gd, beyond_lazy"):
        ot.check_options("sgd", [])


def test_numbers_written_as_text_or_whole_floats():
    """YAML 1.1 reads 1e-3 and 2e2 as strings; a whole float is a whole number (1e4 steps)."""
    assert coerce_options("gd", {"tol": "1e-3", "max_steps": "2e2", "record_every": 5.0}) == {
        "tol": 1e-3, "max_steps": 200, "record_every": 5}
    assert type(coerce_options("gd", {"max_steps": 1e4})["max_steps"]) is int


def test_option_table_lists_every_field_with_default_and_bound():
    from overtensor.solvers.options import MODELS, option_table

    table = option_table("beyond-lazy").splitlines()
    assert table[0] == "| option | type | default | bound | help |"
    assert len(table) == 2 + len(MODELS["beyond_lazy"].model_fields)
    rows = {line.split(" | ")[0].strip("| `"): line.split(" | ")[1:4] for line in table[2:]}
    assert rows["merge_cos"] == ["float", "0.99", "> 0 and <= 1"]
    assert rows["max_epochs"] == ["int", "20", ">= 1"]
    assert rows["step_size"] == ["float", "auto", "> 0"]  # 0.3 / σ: target-dependent
    assert rows["recycle"] == ["bool", "true", "—"]
    assert "0.3 / σ" in option_table("gd")  # the rule gd.step_sizes applies (base.DEFAULT_STEP)
    with pytest.raises(ot.OvertensorError, match="unknown method 'sgd'"):
        option_table("sgd")


def test_auto_defaults_are_the_ones_the_solvers_apply(target):
    """The rules the help states, recomputed: η = 0.3 / σ, δ0 = 1e-3 ‖T*‖^(1/2), δ1 = δ0 / 2, λ = 3e-4 ‖T*‖."""
    # orthonormal components: σ = max_(‖x‖=1) |T(x^⊗3)| is the largest weight, which the power
    # iteration behind the estimate reaches quadratically (30 iterations: to rounding, ~1e-15)
    sigma = float(np.max(target.weights))
    r = ot.decompose(target, 4, "beyond_lazy", max_epochs=1, epoch_steps=1)
    norm = target.norm()
    assert r.info["step_size"] == pytest.approx(0.3 / sigma, rel=1e-12)
    # one product of float64 numbers each: a few eps relative
    assert r.info["init_scale"] == pytest.approx(1e-3 * norm**0.5, rel=1e-14)
    assert r.info["reinit_scale"] == pytest.approx(0.5e-3 * norm**0.5, rel=1e-14)
    assert r.info["reg"] == pytest.approx(3e-4 * norm, rel=1e-14)


def test_docs_option_tables_are_the_generated_ones():
    """docs/options.md is options_page() verbatim; regenerate it with the command it names."""
    from pathlib import Path

    from overtensor.solvers.options import REGENERATE, options_page

    committed = (Path(__file__).parents[1] / "docs" / "options.md").read_text()
    assert committed == options_page(), f"docs/options.md is stale; run: {REGENERATE}"


def test_examples_in_the_docstrings_run():
    import doctest

    from overtensor.solvers import options

    result = doctest.testmod(options)
    assert result.attempted >= 2 and result.failed == 0
