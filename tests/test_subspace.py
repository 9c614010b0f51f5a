"""gd in the span of [W_0; A] (solvers/subspace.py) against the same run in all d coordinates.

The two runs make the same arithmetic in another basis: each step's entries are sums of
at most m + r + 2 products either way, and the basis is orthonormal to ~k eps (Householder
QR), so one step agrees to a few (m + r) eps of max|W| (m + r <= 12 here: < 1e-14) and T
steps to about T times that, the step map being close to the identity at these step sizes
(|1 - η (2 - l) R| <= 1 + 0.3). The bounds below leave a wide margin over both.
"""

from __future__ import annotations

import numpy as np
import pytest

import overtensor as ot
from overtensor.solvers import subspace
from overtensor.solvers.problem import make_problem
from overtensor.solvers.subspace import span_of


def _pair(monkeypatch, target, m, **options):
    reduced = ot.decompose(target, m, **options)
    monkeypatch.setattr(subspace, "SPAN_FRACTION", 0.0)  # never: all d coordinates
    full = ot.decompose(target, m, **options)
    monkeypatch.undo()
    return reduced, full


@pytest.mark.parametrize("order", [3, 4])
def test_one_step_in_the_span_equals_the_full_step(monkeypatch, order):
    target = ot.make_target(40, 3, order, kind="gaussian", weights=[1.0, 0.6, 0.3], seed=order)
    reduced, full = _pair(monkeypatch, target, 6, seed=1, max_steps=1, tol=0.0, init_scale=0.5, reg=1e-2)
    assert np.max(np.abs(reduced.params - full.params)) <= 1e-13 * np.max(np.abs(full.params))


@pytest.mark.parametrize("signs", [None, "half"])
def test_a_run_in_the_span_equals_the_full_run(monkeypatch, signs):
    vectors = ot.make_target(40, 3, 4, kind="gaussian", seed=2).vectors
    target = ot.SymCP([1.0, -0.6 if signs else 0.6, 0.3], vectors, 4)
    truth = target if signs is None else None
    reduced, full = _pair(monkeypatch, target, 8, seed=3, max_steps=200, tol=0.0, signs=signs, truth=truth)
    assert reduced.steps == full.steps == 200
    # 200 steps of ~1e-14 each: 1e-11 leaves a margin of 5
    assert np.max(np.abs(reduced.params - full.params)) <= 1e-11 * np.max(np.abs(full.params))
    # history: the loss is a difference of terms of size ‖T*‖², resolved to ~(m + r) eps of it
    scale = target.norm() ** 2
    np.testing.assert_allclose(reduced.history["loss"], full.history["loss"], rtol=0, atol=1e-12 * scale)
    np.testing.assert_array_equal(reduced.history["active"], full.history["active"])
    if truth is not None:  # the diagnostics see the lifted (m, d) parameters: correlations agree
        np.testing.assert_allclose(reduced.history["corr_0"], full.history["corr_0"], atol=1e-10)


def test_a_start_inside_the_target_span_is_still_exact(monkeypatch):
    # rows of W_0 equal to rows of A: [W_0; A] has rank r < m + r, and QR must still span it
    target = ot.make_target(50, 3, 3, kind="gaussian", seed=4)
    init = np.concatenate([0.3 * target.vectors, 0.2 * target.vectors])
    reduced, full = _pair(monkeypatch, target, 6, init=init, max_steps=50, tol=0.0)
    assert np.max(np.abs(reduced.params - full.params)) <= 1e-11 * np.max(np.abs(full.params))


def test_the_span_is_used_only_where_it_pays():
    t = ot.make_target(40, 3, 3, seed=0)
    W0 = np.random.default_rng(0).standard_normal((1, 6, 40))
    span = span_of(make_problem([t], 6, [0]), W0)
    assert span is not None and span.basis.shape == (1, 9, 40)
    np.testing.assert_allclose(span.basis @ np.swapaxes(span.basis, -1, -2), np.eye(9)[None], atol=1e-14)
    np.testing.assert_allclose(span.lift(span.reduce(W0)), W0, atol=1e-14)  # W_0 lies in the span
    assert span_of(make_problem([t], 30, [0]), np.zeros((1, 30, 40))) is None  # m + r > d / 2
    dense = make_problem([ot.DenseSymTensor(ot.make_target(8, 2, 3, seed=0).to_dense())], 2, [0])
    assert span_of(dense, np.zeros((1, 2, 8))) is None
