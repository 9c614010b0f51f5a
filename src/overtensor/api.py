"""The public entry points: :func:`decompose` and :func:`decompose_batch`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from .tensors.dense import Tensor
from .tensors.convert import as_target
from .errors import OvertensorError
from .progress import Progress, step_budget
from .result import DecompositionResult
from .solvers import METHODS
from .solvers.problem import make_problem

__all__ = ["decompose", "decompose_batch", "methods", "check_options", "coerce_options"]


def methods() -> tuple[str, ...]:
    """Names accepted by ``method=``."""
    return tuple(METHODS)


def check_options(method: str, options: Iterable[str]) -> str:
    """Check a method name and its option names; return the registered name.

    Raises
    ------
    OvertensorError
        If the method is unknown or an option is not one of its model's
        (:mod:`overtensor.solvers.options`), naming the valid ones.
    """
    from .solvers.options import MODELS, method_key

    key = method_key(method)
    accepted = MODELS[key].model_fields
    unknown = [name for name in options if name not in accepted]
    if unknown:
        raise OvertensorError(f"unknown option {unknown[0]!r} for method {key!r}; expected one of "
                              f"{', '.join(accepted)}")
    return key


def coerce_options(method: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The given options of ``method``, validated and typed by its model; the defaults left out.

    A number option may be given as a numeric string (``"1e-3"``, as YAML 1.1 reads
    ``1e-3``); a whole-number option as a whole float or string (``1e4``, ``"2e2"``).

    Raises
    ------
    OvertensorError
        One line naming the method and the option: unknown, bad type or bad value.
    """
    from .solvers.options import validate

    checked = validate(method, options)
    return {name: getattr(checked, name) for name in options}


class _Call(NamedTuple):
    """A validated call: the solver, its options (defaults filled in), the problem's, the given ones."""

    solver: Any
    options: dict[str, Any]
    problem: dict[str, Any]
    given: dict[str, Any]


def _solver(method: str, options: Mapping[str, Any]) -> _Call:
    """Validate ``options`` by the method's model; ``backend``, ``device``, ``dtype`` go to the problem."""
    from .solvers.options import PROBLEM_OPTIONS, method_key, validate

    given = dict(options)
    progress = given.pop("progress", None)
    checked = validate(method, given)
    full = {name: getattr(checked, name) for name in type(checked).model_fields}
    problem = {name: full.pop(name) for name in PROBLEM_OPTIONS if name in full}
    return _Call(METHODS[method_key(method)], {**full, "progress": progress}, problem,
                 {n: checked.__dict__[n] for n in given})


def decompose(target: Tensor, components: int, method: str = "gd", *, seed: int = 0,
              **options: Any) -> DecompositionResult:
    """Decompose a symmetric tensor with ``components`` (``m``) components.

    Parameters
    ----------
    target : SymCP, DenseSymTensor, MomentTensor (:func:`~overtensor.moment_tensor`), a
        TensorSum / CorrectionS / CorrectionG (:mod:`overtensor.tensors.corrections`), a symmetric
        NumPy array ``(d,)*l``, a TensorLy ``CPTensor`` with equal factors (up to sign and
        scale), ``(weights, [factor, ...])`` or ``(weights, vectors, order)``
        (:func:`overtensor.tensors.convert.as_target`)
    components : int, ``m``
    method : str, one of :func:`methods` (hyphens or underscores)
    seed : int, the seed of every random draw of the run
    **options : the method's options, named as the CLI flags with underscores
        (``step_size``, ``max_steps``, ``tol``, ``reg``, ...), validated by the method's
        model (:mod:`overtensor.solvers.options`; tables: :func:`~overtensor.solvers.options.option_table`). ``progress=True`` shows progress (a bar on a terminal,
        else log lines on the ``overtensor`` logger); a callable is called with the
        number of steps done since its last call.

    Returns
    -------
    DecompositionResult

    Examples
    --------
    >>> import overtensor as ot
    >>> target = ot.make_target(dim=10, rank=3, order=3, seed=0)
    >>> result = ot.decompose(target, 10, method="gd", seed=0, tol=1e-4)
    >>> result.converged, result.relative_error <= 1e-4, result.model.rank
    (True, True, 10)
    >>> ot.recover(result.model).rank                      # back to the 3 true components
    3
    >>> ot.decompose(target, 10, step_size=-1.0)           # a bad option is one line
    Traceback (most recent call last):
        ...
    overtensor.errors.OvertensorError: ...step_size...
    """
    call = _solver(method, options)
    problem = make_problem([as_target(target)], components, [seed], **call.problem)
    return _with_options(_run(call.solver, problem, method, call.options)[0], seed, call.given)


def decompose_batch(targets: Sequence[Tensor], components: int, method: str = "gd", *,
                    seeds: Sequence[int], **options: Any) -> list[DecompositionResult]:
    """Run ``B = len(seeds)`` decompositions as one batched computation.

    ``targets`` is one target, in any form :func:`decompose` takes (used for every
    seed), or a list of ``B`` targets of one type and shape. Result ``b`` equals
    ``decompose(targets[b], components, method, seed=seeds[b], **options)`` bit for bit
    (tests/test_batch.py).

    Examples
    --------
    >>> import numpy as np
    >>> import overtensor as ot
    >>> target = ot.make_target(dim=10, rank=3, order=3, seed=0)
    >>> results = ot.decompose_batch(target, 10, seeds=range(3))
    >>> [r.converged for r in results]
    [True, True, True]
    >>> single = ot.decompose(target, 10, seed=2)
    >>> np.array_equal(single.params, results[2].params)   # bit for bit
    True
    """
    seeds = list(seeds)
    if not isinstance(targets, list):  # a tuple is one target: (weights, factors), (weights, vectors, order)
        targets = [targets] * len(seeds)
    call = _solver(method, options)
    problem = make_problem([as_target(t) for t in targets], components, seeds, **call.problem)
    return [_with_options(r, s, call.given) for r, s in zip(_run(call.solver, problem, method, call.options), seeds)]


def _run(solver: Any, problem: Any, method: str, options: dict[str, Any]) -> list[DecompositionResult]:
    """The solver on the problem; ``progress=True`` shows a :class:`~overtensor.progress.Progress`."""
    if options.get("progress") is not True:
        return solver(problem, **{**options, "progress": options.get("progress") or None})
    bar = Progress(step_budget(method, options), method.replace("-", "_"))
    try:
        return solver(problem, **{**options, "progress": bar})
    finally:
        bar.close()


def _with_options(result: DecompositionResult, seed: int, options: Mapping[str, Any]) -> DecompositionResult:
    """``result`` recording what the call asked for (validated; the defaults and the progress callback left out)."""
    asked = {"seed": int(seed), **options}
    return dataclasses.replace(result, options=asked)
