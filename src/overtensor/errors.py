"""The library's one error type."""

from __future__ import annotations

__all__ = ["OvertensorError"]


class OvertensorError(ValueError):
    """Raised for bad input or a failed run; the message names the problem,
    and the offending value or shape, in one line."""
