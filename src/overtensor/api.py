"""The public entry points: :func:`decompose` and :func:`decompose_batch`."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import OvertensorError
from .progress import Progress, step_budget
from .result import DecompositionResult
from .solvers import METHODS
from .solvers.problem import make_problem
from .tensors.convert import TargetLike, as_target
from .validation import as_number

__all__ = ["decompose", "decompose_batch", "methods", "check_options", "coerce_options"]


def methods() -> tuple[str, ...]:
    """Names accepted by ``method=``."""
    return tuple(METHODS)


def check_options(method: str, options: Iterable[str]) -> str:
    """Check a method name and its option names; return the registered name.

    Raises
    ------
    OvertensorError
        If the method is unknown or an option is not a keyword of its solver.
    """
    key = method.replace("-", "_")
    if key not in METHODS:
        raise OvertensorError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    accepted = [p for p in inspect.signature(METHODS[key]).parameters if p != "problem"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise OvertensorError(
            f"unknown option {unknown[0]!r} for method {key!r}; expected one of "
            f"{', '.join(a for a in accepted if a != 'progress')}"
        )
    return key


def coerce_options(method: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check a method's option names (:func:`check_options`) and make its number options numbers.

    An option annotated ``float`` may be given as a numeric string (``"1e-3"``, as
    YAML 1.1 reads ``1e-3``); any other non-number is an error.

    Raises
    ------
    OvertensorError
        On an unknown method or option, or a number option that is not a number,
        naming the option and the method.
    """
    key = check_options(method, options)
    params = inspect.signature(METHODS[key]).parameters
    # annotations are strings (``from __future__ import annotations``): "float", "float | None"
    numeric = {n for n, p in params.items() if "float" in str(p.annotation).split(" | ")}
    return {n: as_number(n, v, key) if n in numeric else v for n, v in options.items()}


def _solver(method: str, options: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    return METHODS[check_options(method, options)], coerce_options(method, options)


def decompose(target: TargetLike, components: int, method: str = "gd", *, seed: int = 0,
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
        (``step_size``, ``max_steps``, ``tol``, ``reg``, ...); see each solver's
        ``solve_batch`` docstring. ``progress=True`` shows progress (a bar on a terminal,
        else log lines on the ``overtensor`` logger); a callable is called with the
        number of steps done since its last call.

    Returns
    -------
    DecompositionResult
    """
    solver, options = _solver(method, options)
    result = _run(solver, make_problem([as_target(target)], components, [seed]), method, options)[0]
    return _with_options(result, seed, options)


def decompose_batch(targets: TargetLike | Sequence[TargetLike], components: int, method: str = "gd", *,
                    seeds: Sequence[int], **options: Any) -> list[DecompositionResult]:
    """Run ``B = len(seeds)`` decompositions as one batched computation.

    ``targets`` is one target, in any form :func:`decompose` takes (used for every
    seed), or a list of ``B`` targets of one type and shape. Result ``b`` equals
    ``decompose(targets[b], components, method, seed=seeds[b], **options)`` bit for bit
    (tests/test_batch.py).
    """
    seeds = list(seeds)
    if not isinstance(targets, list):  # a tuple is one target: (weights, factors), (weights, vectors, order)
        targets = [targets] * len(seeds)
    solver, options = _solver(method, options)
    results = _run(solver, make_problem([as_target(t) for t in targets], components, seeds), method, options)
    return [_with_options(r, s, options) for r, s in zip(results, seeds)]


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
    """``result`` recording what the call asked for (the progress callback left out)."""
    asked = {"seed": int(seed), **{k: v for k, v in options.items() if k != "progress"}}
    return dataclasses.replace(result, options=asked)
