"""A batched run is its single run, bit for bit, for every method with a batch path.

The README promises this, and sweeps rely on it: a stored row must not depend on
how seeds were chunked or where an interrupted sweep resumed. It holds on any
machine because both paths make the same BLAS calls on arrays of the same
layout (every stored array is C-contiguous), however the batch shrinks as runs
stop; no tolerance is involved. The runs below stop at different steps, so the
batch shrinks during each of them.
"""

from __future__ import annotations

import numpy as np
import pytest

import overtensor as ot

CASES = [
    ("gd", {"max_steps": 500, "reg": 1e-3}),
    ("beyond_lazy", {"tol": 1e-3, "max_epochs": 3, "epoch_steps": 60}),
    ("lazy_gd", {"max_steps": 300}),
    ("power", {}),
    ("lazy", {}),
]


@pytest.mark.parametrize("method,options", CASES, ids=[c[0] for c in CASES])
def test_batch_equals_single_bit_for_bit(method, options):
    target = ot.make_target(30, 4, 3, kind="gaussian", weights="geometric", spread=10, seed=2)
    seeds = [1, 2, 3]
    singles = [ot.decompose(target, 8, method, seed=s, **options) for s in seeds]
    batch = ot.decompose_batch(target, 8, method, seeds=seeds, **options)
    for s, b in zip(singles, batch):
        assert (b.steps, b.converged, b.relative_error) == (s.steps, s.converged, s.relative_error)
        np.testing.assert_array_equal(b.params, s.params)
        np.testing.assert_array_equal(b.model.weights, s.model.weights)


def test_dense_target_batch_equals_single_bit_for_bit():
    target = ot.DenseSymTensor(ot.make_target(8, 2, 3, kind="gaussian", seed=5).to_dense())
    singles = [ot.decompose(target, 6, seed=s, max_steps=400) for s in (0, 1)]
    batch = ot.decompose_batch(target, 6, seeds=[0, 1], max_steps=400)
    for s, b in zip(singles, batch):
        assert (b.steps, b.relative_error) == (s.steps, s.relative_error)
        np.testing.assert_array_equal(b.params, s.params)


def test_fortran_ordered_input_gives_the_same_run():
    # a user's F-ordered arrays (np.linalg.qr returns them) are stored C-ordered
    t = ot.make_target(20, 3, 3, seed=0)
    f = ot.SymCP(np.asfortranarray(t.weights), np.asfortranarray(t.vectors), 3)
    assert f.vectors.flags.c_contiguous
    a, b = ot.decompose(t, 6, seed=0, max_steps=300), ot.decompose(f, 6, seed=0, max_steps=300)
    np.testing.assert_array_equal(a.params, b.params)
