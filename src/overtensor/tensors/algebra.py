"""``+``, ``-`` and scalar ``*`` for the tensor types.

They combine into a :class:`~overtensor.tensors.corrections.TensorSum`.
"""

from __future__ import annotations

from numbers import Real
from typing import Any


def _sum(terms: list[Any], coefs: list[float]) -> Any:
    from .corrections import TensorSum  # here, not at import: corrections imports the tensor types

    return TensorSum(terms, coefs)


def _parts(t: Any) -> tuple[list[Any], list[float]]:
    from .corrections import TensorSum

    if isinstance(t, TensorSum):
        return list(t.terms), list(t.coefs)
    return [t], [1.0]


class TermAlgebra:
    """Mixin: ``a + b``, ``a - b``, ``c * a`` and ``-a`` build a flat :class:`TensorSum` of terms."""

    def __add__(self, other: Any) -> Any:
        if not hasattr(other, "order") or not hasattr(other, "dim"):
            return NotImplemented
        (t1, c1), (t2, c2) = _parts(self), _parts(other)
        return _sum(t1 + t2, c1 + c2)

    def __radd__(self, other: Any) -> Any:
        if not hasattr(other, "order") or not hasattr(other, "dim"):
            return NotImplemented
        (t1, c1), (t2, c2) = _parts(other), _parts(self)
        return _sum(t1 + t2, c1 + c2)

    def __mul__(self, factor: Any) -> Any:
        if not isinstance(factor, Real):
            return NotImplemented
        terms, coefs = _parts(self)
        return _sum(terms, [float(factor) * c for c in coefs])

    __rmul__ = __mul__

    def __neg__(self) -> Any:
        return self * -1.0

    def __sub__(self, other: Any) -> Any:
        if not hasattr(other, "order") or not hasattr(other, "dim"):
            return NotImplemented
        return self + (-1.0) * _sum(*_parts(other))

    def __rsub__(self, other: Any) -> Any:
        if not hasattr(other, "order") or not hasattr(other, "dim"):
            return NotImplemented
        return _sum(*_parts(other)) + (-1.0) * self
