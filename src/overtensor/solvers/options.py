r"""Every method's options, declared once: name, type, default, bound and help.

One pydantic model per method (:data:`MODELS`), the shared parts composed by
inheritance: :class:`Descent` holds what the three gradient methods share, and
:class:`GD`, :class:`BeyondLazy`, :class:`LazyGD` add their own. The Python API
(:func:`overtensor.decompose`), the command line's flags and ``--help``, the YAML
spec validation and the docs' option tables (:func:`option_table`) all read these
models; no solver checks a bound itself.

A default that depends on the target is declared as ``None`` ("auto"): the help
gives the rule, and one function of the solver resolves it (named in the help).

This module imports pydantic (about 0.1 s), so ``import overtensor`` and
``overtensor --help`` do not import it; :func:`validate` is imported where it runs.
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo

from ..backend import BACKENDS, DTYPES
from ..errors import OvertensorError
from . import base, beyond_lazy, lazy_gd

__all__ = [
    "ALS",
    "GD",
    "MODELS",
    "PROBLEM_OPTIONS",
    "BeyondLazy",
    "Descent",
    "Lazy",
    "LazyGD",
    "Options",
    "Polish",
    "Power",
    "bound",
    "default_text",
    "fields_by_name",
    "flag_kind",
    "method_key",
    "option_table",
    "options_page",
    "takes_cli",
    "type_name",
    "validate",
]


def _number(value: Any) -> Any:
    """Refuse a bool where a number is meant (pydantic's lax mode reads ``True`` as 1)."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError("a bool is not a number")  # noqa: TRY004  # pydantic reports a ValueError
    return value


def _integer(value: Any) -> Any:
    """A bool is no integer; a string such as ``"2e2"`` (YAML 1.1 reads ``2e2`` as one) is one if it is whole."""
    value = _number(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value  # pydantic reports it
        return int(number) if number.is_integer() else value
    return value


def _sign_values(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


#: A real number: an int, a float or a numeric string (not a bool), finite.
Real = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]
#: A whole number (an int, a whole float, a whole numeric string; not a bool).
Whole = Annotated[int, BeforeValidator(_integer)]
Signs = Annotated[Literal["half"] | list[Real] | None, BeforeValidator(_sign_values)]


def _cli(flag: bool) -> dict[str, Any]:
    return {"cli": flag}


class Options(BaseModel):
    """What every method takes: the tolerance that decides ``converged``."""

    # defer_build: a model's validator is built on its first use, not when this module loads
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, defer_build=True)

    tol: Real = Field(1e-4, ge=0, description="Target relative error ‖T(W) - T*‖ / ‖T*‖: `converged` means at "
                                                "most this (gradient methods stop there; 0: run the whole budget).")


class Descent(Options):
    """The options of the gradient methods (``gd``, ``beyond_lazy``, ``lazy_gd``)."""

    step_size: Real | None = Field(
        None, gt=0, description=f"Step size η. Auto: {base.DEFAULT_STEP} / σ, σ = max_(‖x‖=1) |T*(x^⊗l)| estimated by "
                                "power iteration (`solvers.base.step_sizes`).")
    init_scale: Real | None = Field(
        None, gt=0, description=f"Norm δ0 of the initial components. Auto: {base.DEFAULT_INIT} · ‖T*‖^(1/p), p = 2 "
                                "balanced, l plain (`solvers.base.default_init_scale`).")
    record_every: Whole = Field(10, ge=1, description="History interval in steps.")
    signs: Signs = Field(None, description="A signed balanced model Σ σ_i ‖w_i‖² w̄_i^⊗l for even-order targets "
                                           "with weights of both signs: 'half' (the first ⌈m/2⌉ positive) or m "
                                           "values ±1. Default: unsigned.")
    backend: Literal[tuple(BACKENDS)] = Field(  # type: ignore[valid-type]
        "numpy", description="Array library that runs the descent loop (an option of the problem, `make_problem`; SciPy steps stay on NumPy).")
    device: str | None = Field(None, description="Device for backend torch, e.g. cuda. Default: the "
                                                    "library's default device.")
    dtype: Literal[DTYPES] = Field(  # type: ignore[valid-type]
        "float64", description="Floating-point precision of the loop; float32 resolves relative errors down to "
                               "about 3e-4 only (the final error is recomputed in float64).")


#: The options that configure the problem (:func:`~overtensor.solvers.problem.make_problem`), not the solver:
#: where the arrays live. The gradient methods take them; the others run on NumPy.
PROBLEM_OPTIONS = ("backend", "device", "dtype")


class _Part(BaseModel):
    """A part of a model (no model of its own): built only with the models that use it."""

    model_config = ConfigDict(defer_build=True)


class _Budget(_Part):
    max_steps: Whole = Field(10_000, ge=0, description="Step budget.")


class _Truth(_Part):
    truth: Any = Field(None, description="SymCP (or one per run): adds corr_j, cone_mass_j and movement columns "
                                         "to the history.", json_schema_extra=_cli(False))


class GD(_Truth, _Budget, Descent):
    """Plain gradient descent from a small random start (:mod:`overtensor.solvers.gd`)."""

    reg: Real = Field(0.0, ge=0, description="λ of the ℓ2 regularizer (λ/2)‖W‖².")
    parameterization: Literal["balanced", "plain"] = Field(
        "balanced", description="Model T(W): balanced Σ ‖w_i‖^(2-l) w_i^⊗l, or plain Σ w_i^⊗l.")
    init: Any = Field(None, description="SymCP or (m, d) array: a warm start instead of the random draw "
                                        "(excludes init_scale).", json_schema_extra=_cli(False))

    @model_validator(mode="after")
    def _init_or_scale(self) -> GD:
        if self.init is not None and self.init_scale is not None:
            raise ValueError("init and init_scale exclude each other: init sets the starting parameters")
        return self


class BeyondLazy(_Truth, Descent):
    """Epochs of gradient descent with re-initialization (:mod:`overtensor.solvers.beyond_lazy`)."""

    init_scale: Real | None = Field(
        None, gt=0, description=f"Norm δ0 of the initial and re-drawn components. Auto: {base.DEFAULT_INIT} · "
                                "‖T*‖^(1/2) (`solvers.base.default_init_scale`).")
    reinit_scale: Real | None = Field(
        None, gt=0, description=f"δ1 < δ0: components with norm below it are re-drawn. Auto: "
                                f"{beyond_lazy.DEFAULT_REINIT} · δ0.")
    reg: Real | None = Field(None, ge=0, description=f"λ of the ℓ2 regularizer. Auto: {beyond_lazy.DEFAULT_REG} "
                                                        "· ‖T*‖.")
    epoch_steps: Whole = Field(100, ge=1, description="Steps H0 of the first epoch.")
    epoch_growth: Real = Field(1.25, ge=1, description="γ: epoch k takes ⌈H0 γ^k⌉ steps.")
    max_epochs: Whole = Field(20, ge=1, description="Epoch budget.")
    final_below: Real | None = Field(
        None, ge=0, description=f"λ is off for an epoch that starts below this relative error. Auto: "
                                f"max({beyond_lazy.DEFAULT_FINAL_BELOW}, λ √m / ‖T*‖), above the bias λ leaves "
                                "(`solvers.beyond_lazy._scales`).")
    recycle: bool = Field(True, strict=True, description="Merge duplicate directions between epochs and re-draw "
                                                         "the freed components.")
    merge_cos: Real = Field(0.99, gt=0, le=1, description="τ: directions with cosine at least this merge "
                                                          "(recycle).")

    @model_validator(mode="after")
    def _below_init(self) -> BeyondLazy:
        if self.reinit_scale is not None and self.init_scale is not None and self.reinit_scale >= self.init_scale:
            raise ValueError(f"reinit_scale (δ1 = {self.reinit_scale}) must be below init_scale "
                             f"(δ0 = {self.init_scale})")
        return self


class LazyGD(_Budget, Descent):
    """Gradient descent on the α-scaled, centred model (:mod:`overtensor.solvers.lazy_gd`)."""

    alpha: Real = Field(lazy_gd.DEFAULT_ALPHA, gt=0, description="Scale α of the model α (T(W) - T(W0)); large α "
                                                                 "is lazy, α = 1 ordinary training.")
    step_size: Real | None = Field(
        None, gt=0, description=f"Step size η. Auto: {lazy_gd.DEFAULT_STEP} / (λ_max(J0ᵀJ0) + l² ‖T*‖ / α), the "
                                "Gauss-Newton curvature at W0 plus the residual's, per run.")
    init_scale: Real | None = Field(None, gt=0, description="Norm of the rows of W0. Auto: ‖T*‖^(1/2).")


class Lazy(Options):
    """Projection onto the tangent space at the random start (:mod:`overtensor.solvers.lazy`)."""

    cg_tol: Real = Field(1e-10, gt=0, lt=1, description="CG stops at ‖b - K U‖ ≤ cg_tol ‖b‖.")
    max_iter: Whole = Field(5_000, ge=1, description="CG iteration budget.")
    record_every: Whole = Field(10, ge=1, description="History interval in CG iterations.")


class Power(Options):
    """Tensor power method with deflation (:mod:`overtensor.solvers.power`)."""

    n_starts: Whole = Field(10, ge=1, description="Random unit starts per component.")
    max_iter: Whole = Field(100, ge=1, description="Power iterations per component.")
    power_tol: Real = Field(1e-10, ge=0, description="A start has converged once ‖x_(t+1) - ±x_t‖ ≤ power_tol.")


class ALS(Options):
    """CP-ALS through TensorLy (:mod:`overtensor.solvers.als`)."""

    max_iter: Whole = Field(500, ge=1, description="ALS sweeps.")
    als_tol: Real = Field(1e-10, ge=0, description="ALS stops when its relative error decreases by less "
                                                   "(TensorLy's tol).")
    als_init: Literal["random", "svd"] = Field(
        "random", description="TensorLy's initialization; svd is the stronger peer on dense low-rank targets.")


class Polish(Options):
    """Levenberg–Marquardt at m = r̂ (:mod:`overtensor.solvers.newton`; :func:`overtensor.polish`)."""

    tol: Real = Field(1e-12, ge=0, description="Stop at relative error at most this.")
    max_steps: Whole = Field(100, ge=0, description="LM iterations.")
    ftol: Real = Field(1e-10, ge=0, description="Stop when an accepted step lowers ‖R‖ by less than ftol ‖R‖.")
    xtol: Real = Field(1e-15, ge=0, description="Stop when the step ‖h‖ ≤ xtol ‖W‖.")
    cg_tol: Real = Field(1e-10, gt=0, lt=1, description="Relative residual at which each CG solve stops.")
    init: Any = Field(None, description="SymCP or (m, d) array, required: the components to polish "
                                        "(m = components).", json_schema_extra=_cli(False))


#: The model of each method, by its registered name (:data:`overtensor.solvers.METHODS`).
MODELS: dict[str, type[Options]] = {
    "gd": GD, "beyond_lazy": BeyondLazy, "lazy": Lazy, "lazy_gd": LazyGD, "power": Power, "als": ALS,
    "polish": Polish,
}


def method_key(method: str) -> str:
    """The registered name of ``method`` (hyphens or underscores), or a one-line error."""
    key = method.replace("-", "_") if isinstance(method, str) else None
    if key not in MODELS:
        raise OvertensorError(f"unknown method {method!r}; expected one of {', '.join(MODELS)}")
    return key


def validate(method: str, options: Mapping[str, Any]) -> Options:
    """``options`` of ``method`` checked and typed by the method's model.

    Raises
    ------
    OvertensorError
        One line naming the method and the option: unknown (with the valid names), of
        the wrong type, or out of bounds (with the bound).

    Examples
    --------
    >>> validate("beyond-lazy", {"max_epochs": "5"}).max_epochs
    5
    >>> validate("gd", {"step_size": -1.0})
    Traceback (most recent call last):
    ...
    overtensor.errors.OvertensorError: step_size of method 'gd' must be a finite number > 0, got -1.0
    """
    key = method_key(method)
    model = MODELS[key]
    unknown = [name for name in options if name not in model.model_fields]
    if unknown:
        raise OvertensorError(f"unknown option {unknown[0]!r} for method {key!r}; expected one of "
                              f"{', '.join(model.model_fields)}")
    try:
        return model(**options)
    except ValidationError as exc:
        raise OvertensorError(_describe(exc, model, key, options)) from None


def _describe(exc: ValidationError, model: type[Options], key: str, options: Mapping[str, Any]) -> str:
    """The first error of ``exc`` as ``name of method 'key' must be ..., got value``."""
    errors = exc.errors()
    # of a union's errors (float | None) the one of the non-None branch says what was meant
    err = next((e for e in errors if e["type"] != "none_required"), errors[0])
    if not err["loc"]:  # a model validator: its message names the options
        message = str(err.get("ctx", {}).get("error", err["msg"]))
        return f"method {key!r}: {message}"
    name = str(err["loc"][0])
    value = options.get(name, err.get("input"))
    field = model.model_fields[name]
    kind = err["type"]
    if _is_signs(field):
        want = "'half' or a list of m values +1/-1"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"):
        want = f"a finite number {bound(field)}" if _base_type(field) is float else f"an integer {bound(field)}"
    elif kind == "literal_error":
        want = "one of " + ", ".join(repr(c) for c in _choices(field))
    elif kind.startswith("bool"):
        want = "true or false"
    elif _base_type(field) is int:
        want = "an integer"
    else:
        want = "a number" if _base_type(field) is float else f"a {type_name(field)}"
    return f"{name} of method {key!r} must be {want}, got {value!r}"


# ----------------------------------------------------------------------------- reading a field


def _unwrap(ann: Any) -> Any:
    """The type inside ``Annotated[...]`` and ``X | None``."""
    origin = get_origin(ann)
    if origin is Annotated:
        return _unwrap(get_args(ann)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else ann
    return ann


def _base_type(field: FieldInfo) -> Any:
    """``float``, ``int``, ``bool``, ``str`` (a Literal or a free string) or ``object`` (anything else)."""
    ann = _unwrap(field.annotation)
    if ann in (float, int, bool, str):
        return ann
    if get_origin(ann) is Literal:
        return str
    return object


def _choices(field: FieldInfo) -> tuple[str, ...]:
    """The values of a Literal field (``()`` for any other)."""
    ann = _unwrap(field.annotation)
    return tuple(get_args(ann)) if get_origin(ann) is Literal else ()


def type_name(field: FieldInfo) -> str:
    """The type as the docs show it: ``float``, ``int``, ``bool``, ``str``, ``{a, b}``, or ``object``."""
    choices = _choices(field)
    if choices:
        return "{" + ", ".join(choices) + "}"
    if _is_signs(field):
        return "'half' or list of ±1"
    return _base_type(field).__name__


def _is_signs(field: FieldInfo) -> bool:
    return get_origin(_unwrap(field.annotation)) in (Union, types.UnionType)


def bound(field: FieldInfo) -> str:
    """The field's bounds as text, e.g. ``> 0``, ``>= 1``, ``> 0 and <= 1``; ``""`` if none."""
    parts = []
    for item in field.metadata:
        for cls, op in ((annotated_types.Gt, ">"), (annotated_types.Ge, ">="), (annotated_types.Lt, "<"),
                        (annotated_types.Le, "<=")):
            if isinstance(item, cls):
                limit = getattr(item, {">": "gt", ">=": "ge", "<": "lt", "<=": "le"}[op])
                parts.append(f"{op} {_number_text(limit)}")
    return " and ".join(parts)


def _number_text(x: Any) -> str:
    return str(int(x)) if isinstance(x, (int, float)) and math.isfinite(x) and float(x).is_integer() else repr(x)


def flag_kind(field: FieldInfo) -> Any:
    """What a command-line flag reads: ``float``, ``int``, ``bool``, ``str`` or the choices of a Literal."""
    choices = _choices(field)
    if choices:
        return choices
    kind = _base_type(field)
    return str if kind is object else kind  # signs: 'half' or comma-separated values


def takes_cli(field: FieldInfo) -> bool:
    """Whether the field is an option the command line and a spec can set (not an object such as ``init``)."""
    extra = field.json_schema_extra
    return not (isinstance(extra, dict) and extra.get("cli") is False)


def default_text(field: FieldInfo) -> str:
    """The default as the docs and ``--help`` show it: ``auto`` for a target-dependent ``None``."""
    value = field.default
    if value is None:
        return "auto" if "Auto:" in (field.description or "") else "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def option_table(method: str) -> str:
    """The options of ``method`` as a Markdown table: option, type, default, bound, help.

    Generated from the method's model (:data:`MODELS`); the docs' option tables are
    this text (tests/test_options.py checks that they match).

    Examples
    --------
    >>> print(option_table("power").splitlines()[3])
    | `n_starts` | int | 10 | >= 1 | Random unit starts per component. |
    """
    model = MODELS[method_key(method)]
    lines = ["| option | type | default | bound | help |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        help_text = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{name}` | {type_name(field)} | {default_text(field)} | {bound(field) or '—'} | "
                     f"{help_text} |")
    return "\n".join(lines) + "\n"


#: How docs/options.md is regenerated (tests/test_options.py checks it is current).
REGENERATE = ('python -c "from overtensor.solvers.options import options_page; print(options_page(), end=\'\')" '
              "> docs/options.md")


def options_page() -> str:
    """docs/options.md: a section per method with its :func:`option_table`."""
    parts = ["# Method options", "",
             f"<!-- generated from src/overtensor/solvers/options.py: {REGENERATE} -->", "",
             ("Every option of every method, from its model in `overtensor.solvers.options` (the same "
             "declarations validate `overtensor.decompose`, generate the `overtensor decompose` flags and "
             "check experiment specs). `auto`: a default that depends on the target, its rule in the help. "
             "On the command line an option `max_steps` is the flag `--max-steps`."), ""]
    for key, model in MODELS.items():
        summary = re.sub(r":\w+:`([^`]+)`", r"`\1`", (model.__doc__ or "").strip())  # Sphinx roles: plain code
        parts += [f"## `{key}`", "", summary, "", option_table(key)]
    return "\n".join(parts)


def fields_by_name(methods: Sequence[str]) -> dict[str, list[tuple[str, FieldInfo]]]:
    """Every command-line option of ``methods``: name -> ``[(method, field), ...]``, in declaration order."""
    out: dict[str, list[tuple[str, FieldInfo]]] = {}
    for method in methods:
        for name, field in MODELS[method].model_fields.items():
            if takes_cli(field):
                out.setdefault(name, []).append((method, field))
    return out
