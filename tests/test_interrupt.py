"""Ctrl-C in the Python API: the descent methods return where the runs stood, marked interrupted.

A progress callback that raises KeyboardInterrupt delivers the Ctrl-C at a known step:
progress is called every record_every steps, after those steps were taken.
"""

from __future__ import annotations

import numpy as np
from conftest import residual_floor

import overtensor as ot


def _interrupt_after(calls: int):
    seen = []

    def progress(n: int) -> None:
        seen.append(n)
        if len(seen) == calls:
            raise KeyboardInterrupt

    return progress


def test_gd_returns_its_state_at_the_interrupt():
    t = ot.make_target(20, 3, 3, kind="gaussian", seed=1)
    stopped = ot.decompose(t, 8, seed=2, tol=0.0, max_steps=10_000, progress=_interrupt_after(3))
    assert stopped.info["interrupted"] and not stopped.converged and stopped.steps == 30
    # exactly the parameters 30 uninterrupted steps reach; the error by another formula, to its floor
    ref = ot.decompose(t, 8, seed=2, tol=0.0, max_steps=30)
    assert not ref.info["interrupted"]
    np.testing.assert_array_equal(stopped.params, ref.params)
    assert abs(stopped.relative_error - ref.relative_error) <= 2 * residual_floor(ref.relative_error, 2 * 8 + 3 + 20)


def test_a_batch_and_beyond_lazy_stop_too():
    t = ot.make_target(20, 3, 3, kind="gaussian", seed=1)
    runs = ot.decompose_batch(t, 8, seeds=[0, 1], tol=0.0, max_steps=10_000, progress=_interrupt_after(2))
    assert all(r.info["interrupted"] and r.steps == 20 for r in runs)
    bl = ot.decompose(t, 8, "beyond-lazy", seed=0, tol=1e-12, progress=_interrupt_after(2))
    assert bl.info["interrupted"] and not bl.converged and bl.steps == 20
    # stopped inside the first epoch, which is recorded with the step it reached
    assert [e["step"] for e in bl.info["epochs"]] == [20]
