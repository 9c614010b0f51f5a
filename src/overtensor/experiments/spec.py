"""Experiment specs: a YAML file that expands into ``(config, seed)`` runs.

A spec names an experiment and lists *blocks*; each block is a grid::

    name: e2_quick
    experiment: e2              # e1..e6 picks the report's figure; any other tag gets the generic one
    seeds: 4                    # 0, 1, 2, 3 (or an explicit list); a block may override it
    epsilon: 1.0e-2             # success threshold used by the report
    record: {history: true, history_rows: 200}
    runs:
      - target: {dim: [10, 30], rank: 5, order: 3}
        method: gd
        options: {max_steps: 2000}
        components: [5, 10, 20]   # or {times_rank: [1, 2]} or {times_threshold: [0.5, 1.0]}

In ``target``, ``options`` and ``method`` every list is swept (Cartesian
product, in the order written); to pass one list-valued value, such as
explicit target weights, wrap it: ``weights: [[3, 2, 1]]``.
``components`` is a list of counts, or a rule relative to the target:
``times_rank: x`` gives ``m = round(x r)`` and ``times_threshold: x`` gives
``m = round(x C(d+l-1, l) / d)``, the lazy (NTK) threshold (at least 1).

Each run draws its initialization from its seed ``s``; the target is drawn
from an independent stream derived from ``s`` (:func:`target_seed`), unless
``target.seed`` fixes one target for every seed.  Everything is validated when
the spec is loaded; an error names the file, the field, the bad value and
what was expected, in one line.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..api import check_options, coerce_options
from ..errors import OvertensorError
from ..tensors.symcp import SymCP
from ..tensors.targets import KINDS, make_target

__all__ = ["Spec", "Block", "Record", "RunConfig", "TargetConfig", "Run", "load_spec", "parse_spec",
           "target_seed", "lazy_threshold", "build_target"]

Seeds = Union[Annotated[int, Field(ge=1)], list[Annotated[int, Field(ge=0)]]]
Scalar = Union[bool, int, float, str, None]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Record(_Model):
    """What each run stores besides its summary metrics.

    history : store the run's history (subsampled to at most ``history_rows`` rows)
    recovery : also store ``overtensor.match(overtensor.recover(model), truth).summary()``
        as ``recovery_min_cosine``, ``recovery_missing``, ``recovery_spurious`` (counts)
    truth : pass the target as the method's ``truth`` option (history columns such
        as correlations with each true direction); the method must take ``truth``
    """

    history: bool = True
    history_rows: Annotated[int, Field(ge=2, le=100_000)] = 200
    recovery: bool = False
    truth: bool = False


class ComponentRule(_Model):
    """``m`` relative to the target: exactly one of the two factors (a number or a list)."""

    times_rank: Union[float, list[float], None] = None
    times_threshold: Union[float, list[float], None] = None

    @model_validator(mode="after")
    def _one(self) -> "ComponentRule":
        if (self.times_rank is None) == (self.times_threshold is None):
            raise ValueError("give exactly one of times_rank, times_threshold")
        return self


class Block(_Model):
    """One grid of runs: every list in ``target``, ``method`` and ``options`` is swept.

    ``polish``: after the method, recover ``r̂`` components (``overtensor.recover``)
    and run ``overtensor.polish`` with these keyword arguments (e.g. ``max_steps``)
    at ``m = r̂``; the stored history continues with that phase.
    """

    target: dict[str, Any]
    method: Union[str, list[str]]
    options: dict[str, Any] = {}
    components: Union[Annotated[int, Field(ge=1)], list[Annotated[int, Field(ge=1)]], ComponentRule]
    seeds: Union[Seeds, None] = None
    label: Union[str, None] = None
    polish: Union[dict[str, Scalar], None] = None


class Spec(_Model):
    """A validated experiment spec; :meth:`expand` lists its runs."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    experiment: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
    description: str = ""
    seeds: Seeds = 1
    epsilon: Annotated[float, Field(gt=0)] = 1e-2
    record: Record = Record()
    runs: Annotated[list[Block], Field(min_length=1)]

    def expand(self) -> list["Run"]:
        """All ``(config, seed)`` runs, in spec order (blocks, grid, seeds)."""
        runs = []
        for i, block in enumerate(self.runs):
            seeds = _seed_list(block.seeds if block.seeds is not None else self.seeds,
                               f"runs[{i}].seeds" if block.seeds is not None else "seeds")
            for config in _block_configs(self.experiment, block, f"runs[{i}]"):
                runs.extend(Run(config, s, config.key) for s in seeds)
        return runs


class TargetConfig(_Model):
    """The arguments of :func:`overtensor.make_target` (``seed``: a fixed target, or None)."""

    dim: Annotated[int, Field(ge=1)]
    rank: Annotated[int, Field(ge=1)]
    order: Annotated[int, Field(ge=2)] = 3
    kind: Literal[KINDS] = "orthonormal"  # type: ignore[valid-type]
    weights: Union[Literal["equal", "geometric"], list[Annotated[float, Field(gt=0)]]] = "equal"
    spread: Annotated[float, Field(ge=1)] = 10.0
    coherence: Annotated[float, Field(ge=0, lt=1)] = 0.5
    seed: Union[Annotated[int, Field(ge=0)], None] = None


class RunConfig(_Model):
    """One point of a grid: everything that determines a run except its seed."""

    experiment: str
    label: str
    target: TargetConfig
    method: str
    options: dict[str, Scalar]
    components: int
    polish: Union[dict[str, Scalar], None] = None

    @property
    def key(self) -> str:
        """Hash of the canonical JSON of the config: with the seed, a run's identity in a store."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:20]


class Run(NamedTuple):
    config: RunConfig
    seed: int
    key: str


def lazy_threshold(dim: int, order: int) -> float:
    """``C(d+l-1, l) / d``: the ``m`` below which the lazy (NTK) residual cannot vanish."""
    return math.comb(dim + order - 1, order) / dim


def target_seed(config: RunConfig, seed: int) -> int:
    """The target's seed: ``target.seed`` if fixed, else a stream independent of the init's ``seed``.

    (Reusing ``seed`` itself would correlate the target with the initialization:
    both draw their first Gaussians from ``default_rng(seed)``.)
    """
    if config.target.seed is not None:
        return config.target.seed
    return int(np.random.SeedSequence([seed, 0x7A12]).generate_state(1)[0])


def build_target(config: RunConfig, seed: int) -> SymCP:
    """The ground truth of run ``(config, seed)``."""
    t = config.target
    return make_target(t.dim, t.rank, t.order, kind=t.kind, weights=t.weights, spread=t.spread,
                       coherence=t.coherence, seed=target_seed(config, seed))


# ----------------------------------------------------------------------------- loading


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec; raise a one-line :class:`OvertensorError` naming the field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise OvertensorError(f"spec {path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise OvertensorError(f"spec {path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_spec(data, source=str(path))


def parse_spec(data: Any, source: str = "<spec>") -> Spec:
    """Validate a spec given as a mapping (the parsed YAML)."""
    if not isinstance(data, Mapping):
        raise OvertensorError(f"spec {source}: expected a mapping of fields, got {type(data).__name__}")
    try:
        spec = Spec.model_validate(dict(data))
        spec.expand()  # validates every grid point
        _check_extras(spec)
    except ValidationError as exc:
        raise OvertensorError(f"spec {source}: {_describe(exc, Spec)}") from None
    except _FieldError as exc:
        raise OvertensorError(f"spec {source}: {exc}") from None
    return spec


def _check_extras(spec: Spec) -> None:
    """The library functions that ``record`` and ``polish`` need exist and take the given arguments."""
    import overtensor

    def need(where: str, *names: str) -> None:
        for name in names:
            if not hasattr(overtensor, name):
                raise _FieldError(f"{where}: needs overtensor.{name}, which this version lacks")

    if spec.record.recovery:
        need("record.recovery", "recover", "match")
    for i, block in enumerate(spec.runs):
        if spec.record.truth:
            for method in block.method if isinstance(block.method, list) else [block.method]:
                try:
                    check_options(method, ["truth"])
                except OvertensorError:
                    raise _FieldError(f"record.truth: method {method!r} of runs[{i}] takes no truth option") from None
        if block.polish is not None:
            need(f"runs[{i}].polish", "recover", "polish")


class _FieldError(Exception):
    """A bad value found while expanding a block; the message starts with its path."""


def _seed_list(seeds: int | list[int], where: str) -> list[int]:
    if isinstance(seeds, int):
        return list(range(seeds))
    if not seeds:
        raise _FieldError(f"{where}: got []; expected a count >= 1 or a list of seeds")
    repeated = [s for i, s in enumerate(seeds) if s in seeds[:i]]
    if repeated:
        raise _FieldError(f"{where}: seed {repeated[0]} appears twice")
    return list(seeds)


def _sweep(values: Mapping[str, Any], where: str) -> Iterator[dict[str, Any]]:
    """Cartesian product over the list-valued entries, in the order written; an empty list is an error."""
    names = list(values)
    axes = [v if isinstance(v, list) else [v] for v in values.values()]
    for name, axis in zip(names, axes):
        if not axis:
            raise _FieldError(f"{where}.{name}: got []; expected a value or a non-empty list (an empty grid)")
    for combo in itertools.product(*axes):
        yield dict(zip(names, combo))


def _block_configs(experiment: str, block: Block, where: str) -> Iterator[RunConfig]:
    methods = block.method if isinstance(block.method, list) else [block.method]
    if not methods:
        raise _FieldError(f"{where}.method: got []; expected a method or a non-empty list (an empty grid)")
    polish = _check_polish(block.polish, where)
    for target_fields in _sweep(block.target, f"{where}.target"):
        try:
            target = TargetConfig.model_validate(target_fields)
            make_target(target.dim, target.rank, target.order, kind=target.kind, weights=target.weights,
                        spread=target.spread, coherence=target.coherence)  # can it be drawn at all?
        except ValidationError as exc:
            raise _FieldError(_describe(exc, TargetConfig, f"{where}.target")) from None
        except OvertensorError as exc:
            raise _FieldError(f"{where}.target: {exc}") from None
        for method in methods:
            try:
                name = check_options(method, block.options)
            except OvertensorError as exc:
                raise _FieldError(f"{where}.{'method' if 'unknown method' in str(exc) else 'options'}: {exc}") from None
            for options in _sweep(block.options, f"{where}.options"):
                options = _check_options(name, options, f"{where}.options")
                for m in _components(block.components, target, where):
                    yield RunConfig.model_validate(dict(
                        experiment=experiment, label=block.label or name, target=target, method=name,
                        options=options, components=m, polish=polish))


def _check_options(method: str, options: dict[str, Any], where: str) -> dict[str, Scalar]:
    """One grid point's options, validated and typed by the method's model (as the API does)."""
    from ..solvers.options import MODELS, takes_cli

    for name in options:
        if not takes_cli(MODELS[method].model_fields[name]):
            raise _FieldError(f"{where}.{name}: not an option a spec can set (method {method!r})")
    try:
        return coerce_options(method, options)
    except OvertensorError as exc:
        raise _FieldError(f"{where}: {exc}") from None


def _check_polish(polish: dict[str, Any] | None, where: str) -> dict[str, Any] | None:
    """``polish`` keywords of :func:`overtensor.polish`, validated by the ``polish`` model (all but ``init``)."""
    from ..solvers.options import Polish

    if polish is None:
        return polish
    accepted = [name for name in Polish.model_fields if name != "init"]
    unknown = [name for name in polish if name not in accepted]
    if unknown:
        raise _FieldError(f"{where}.polish: unknown option {unknown[0]!r}; expected one of {', '.join(accepted)}")
    try:
        return coerce_options("polish", polish)
    except OvertensorError as exc:
        raise _FieldError(f"{where}.polish: {exc}") from None


def _components(rule: int | list[int] | ComponentRule, target: TargetConfig, where: str) -> list[int]:
    if isinstance(rule, int):
        return [rule]
    if isinstance(rule, list):
        if not rule:
            raise _FieldError(f"{where}.components: got []; expected a count >= 1 or a non-empty list "
                              "(an empty grid)")
        return rule
    if rule.times_rank is not None:
        name, factors, base = "times_rank", rule.times_rank, float(target.rank)
    else:
        name, factors, base = "times_threshold", rule.times_threshold, lazy_threshold(target.dim, target.order)
    if factors == []:
        raise _FieldError(f"{where}.components.{name}: got []; expected a factor > 0 or a non-empty list "
                          "(an empty grid)")
    out = []
    for x in factors if isinstance(factors, list) else [factors]:
        if not (math.isfinite(x) and x > 0):
            raise _FieldError(f"{where}.components.{name}: {x!r} is not > 0")
        out.append(max(1, round(x * base)))
    return out


# ----------------------------------------------------------------------------- error messages


def _describe(exc: ValidationError, root: type[BaseModel], prefix: str = "") -> str:
    """The first pydantic error as ``path: value is not what was expected`` (``path`` after ``prefix``)."""
    # in a union, the most specific complaint is the deepest one that is not a plain type mismatch
    err = min(exc.errors(), key=lambda e: (e["type"].endswith("_type"), -len(e["loc"])))
    loc = _branchless(err["loc"])
    path = _path(prefix, loc)
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx", {})
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = ctx.get({">=": "ge", ">": "gt", "<": "lt", "<=": "le"}[bounds[kind]])
        what = f"{value!r} is not {bounds[kind]} {limit}"
    elif kind == "extra_forbidden":
        parent = _path(prefix, loc[:-1])
        fields = _fields_at(root, loc[:-1])
        expected = f"; expected one of {', '.join(fields)}" if fields else ""
        return f"{parent + ': ' if parent else ''}unknown field {loc[-1]!r}{expected}"
    elif kind == "missing":
        what = "missing (required)"
    else:
        msg = err["msg"]
        what = f"got {value!r}; {msg[0].lower()}{msg[1:]}"
    return f"{path}: {what}" if path else what


def _path(prefix: str, loc: Sequence) -> str:
    return (prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)).lstrip(".")


def _branchless(loc: tuple) -> tuple:
    """Drop pydantic's union-branch tags (``'int'``, ``'list[int]'``...) from an error location."""
    return tuple(p for p in loc if isinstance(p, int) or not any(c in p for c in "[]-(") and p not in (
        "int", "float", "str", "bool", "function-after", "function-before"))


def _fields_at(model: type[BaseModel], loc: Sequence) -> list[str]:
    """Field names of the model reached by following ``loc`` from ``model`` (empty if not a model)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return []
        current = _model_in(current.model_fields[part].annotation)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
