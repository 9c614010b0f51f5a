"""The public entry points: :func:`decompose` and :func:`decompose_batch`."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any

from .dense import Tensor
from .errors import OvertensorError
from .result import DecompositionResult
from .solvers import METHODS
from .solvers.problem import make_problem

__all__ = ["decompose", "decompose_batch", "methods", "check_options"]


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


def _solver(method: str, options: dict[str, Any]):
    return METHODS[check_options(method, options)]


def decompose(target: Tensor, components: int, method: str = "gd", *, seed: int = 0,
              **options: Any) -> DecompositionResult:
    """Decompose a symmetric tensor with ``components`` (``m``) components.

    Parameters
    ----------
    target : SymCP, DenseSymTensor, MomentTensor (:func:`~overtensor.moment_tensor`), or a
        TensorSum / CorrectionS / CorrectionG (:mod:`overtensor.corrections`)
    components : int, ``m``
    method : str, one of :func:`methods` (hyphens or underscores)
    seed : int, the seed of every random draw of the run
    **options : the method's options, named as the CLI flags with underscores
        (``step_size``, ``max_steps``, ``tol``, ``reg``, ...); see each solver's
        ``solve_batch`` docstring.

    Returns
    -------
    DecompositionResult
    """
    solver = _solver(method, options)
    return solver(make_problem([target], components, [seed]), **options)[0]


def decompose_batch(targets: Sequence[Tensor], components: int, method: str = "gd", *,
                    seeds: Sequence[int], **options: Any) -> list[DecompositionResult]:
    """Run ``B = len(seeds)`` decompositions as one batched computation.

    ``targets`` is one tensor (used for every seed) or ``B`` tensors of one
    type and shape. Result ``b`` equals ``decompose(targets[b], components,
    method, seed=seeds[b], **options)`` up to floating-point rounding.
    """
    seeds = list(seeds)
    if not isinstance(targets, Sequence):
        targets = [targets] * len(seeds)
    solver = _solver(method, options)
    return solver(make_problem(list(targets), components, seeds), **options)
