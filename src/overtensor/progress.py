"""Progress of a run where a user looks: a tqdm bar on a terminal, log lines elsewhere.

On a terminal (``stderr`` is a TTY) :class:`Progress` draws a tqdm bar. Elsewhere (a
SLURM job, ``nohup``, a pipe) it logs an INFO line on the ``overtensor`` logger at
most every :data:`LOG_EVERY` seconds, e.g. ``gd: 1200 of 10000 steps (12%), 310 steps/s``;
the command line routes that logger to stderr, a Python program shows it with
``logging.basicConfig(level=logging.INFO)``.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

__all__ = ["LOG", "LOG_EVERY", "Progress", "step_budget"]

LOG = logging.getLogger("overtensor")
#: Seconds between two log lines when stderr is not a terminal.
LOG_EVERY = 5.0


def step_budget(method: str, options: Mapping[str, Any]) -> int | None:
    """The steps a run of ``method`` takes at most, where that is known in advance; else None.

    ``gd`` and ``lazy_gd``: ``max_steps``; ``beyond_lazy``: ``Σ_{k < max_epochs} ⌈H_0 γ^k⌉``.
    """
    from .solvers.options import validate  # pydantic: imported when a run starts, not with overtensor

    key = method.replace("-", "_")
    if key not in ("gd", "lazy_gd", "beyond_lazy"):
        return None
    opts: Any = validate(key, {k: v for k, v in options.items() if k != "progress"})
    if key == "beyond_lazy":
        return sum(math.ceil(opts.epoch_steps * opts.epoch_growth**k) for k in range(opts.max_epochs))
    return int(opts.max_steps)


class Progress:
    """``progress(n)``: ``n`` more steps done. A tqdm bar on a terminal, else log lines.

    Parameters
    ----------
    total : the step budget, or None where it is not known in advance
    label : what runs, e.g. the method's name
    unit : what is counted (``"step"``; a sweep counts ``"run"``)
    initial : already done before (a resumed sweep)
    stream : where the bar goes and whose ``isatty()`` decides (default ``sys.stderr``)
    every : seconds between log lines (default :data:`LOG_EVERY`)
    """

    def __init__(self, total: int | None, label: str, *, unit: str = "step", initial: int = 0,
                 stream: IO[str] | None = None, every: float | None = None) -> None:
        stream = sys.stderr if stream is None else stream
        self.total, self.label, self.unit, self.steps = total, label, unit, initial
        self.initial = initial
        self.every = LOG_EVERY if every is None else every
        self.start = self.last = time.monotonic()
        self.bar = None
        if stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit=unit, file=stream, leave=False, desc=label)

    def __call__(self, n: int) -> None:
        self.steps += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            LOG.info(self.line(now))

    def line(self, now: float | None = None) -> str:
        """``label: done [of total] units [(p%)], rate units/s`` (the rate of this session)."""
        elapsed = max((time.monotonic() if now is None else now) - self.start, 1e-9)
        units = f"{self.unit}s"
        of = f" of {self.total} {units} ({100 * self.steps / self.total:.0f}%)" if self.total else f" {units}"
        rate = (self.steps - self.initial) / elapsed
        return f"{self.label}: {self.steps}{of}, {rate:.3g} {units}/s"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
