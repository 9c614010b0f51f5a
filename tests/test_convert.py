"""What decompose accepts besides the tensor types, and the way to and from TensorLy."""

from __future__ import annotations

import numpy as np
import pytest
import tensorly as tl
from tensorly.cp_tensor import CPTensor

import overtensor as ot
from overtensor.tensors.convert import as_target


def test_a_symmetric_numpy_array_is_a_dense_target():
    t = ot.make_target(8, 2, 3, kind="gaussian", seed=1)
    a = ot.decompose(t.to_dense(), 6, seed=0, max_steps=200)
    b = ot.decompose(ot.DenseSymTensor(t.to_dense()), 6, seed=0, max_steps=200)
    np.testing.assert_array_equal(a.params, b.params)  # the same target, the same arithmetic
    with pytest.raises(ot.OvertensorError, match="not symmetric"):
        ot.decompose(np.random.default_rng(0).standard_normal((4, 4, 4)), 3)


def test_tensorly_cp_tensor_with_equal_factors_up_to_sign_and_scale():
    t = ot.make_target(6, 3, 3, kind="gaussian", weights=[1.0, 0.5, 0.25], seed=2)
    U = t.vectors.T  # (d, r)
    # factor 1 flips column 0 and scales column 2; factor 2 flips column 0 back: the same tensor
    f1 = U * np.array([-1.0, 1.0, 3.0])
    f2 = U * np.array([-1.0, 1.0, 1 / 3])
    cp = CPTensor((t.weights, [U, f1, f2]))
    converted = as_target(cp)
    # against TensorLy's own reconstruction of the CP tensor (a sum of d^3 outer products)
    np.testing.assert_allclose(converted.to_dense(), tl.cp_to_tensor(cp), rtol=1e-12, atol=1e-14)
    assert ot.decompose(cp, 9, seed=0, tol=1e-3).converged


def test_a_cp_tensor_that_is_not_symmetric_is_one_line():
    rng = np.random.default_rng(0)
    U = rng.standard_normal((5, 2))
    V = U.copy()
    V[:, 1] = rng.standard_normal(5)
    with pytest.raises(ot.OvertensorError, match=r"not symmetric: column 1 of factor 2 has \|cos\|"):
        ot.decompose(CPTensor((np.ones(2), [U, U, V])), 3)
    with pytest.raises(ot.OvertensorError, match="one shape"):
        ot.decompose((np.ones(2), [U, U[:4]]), 3)


def test_tuples_and_batches():
    t = ot.make_target(10, 2, 3, seed=0)
    triple = (t.weights, t.vectors, 3)
    pair = (t.weights, [t.vectors.T] * 3)
    ref = ot.decompose(t, 6, seed=1, max_steps=100)
    np.testing.assert_array_equal(ot.decompose(triple, 6, seed=1, max_steps=100).params, ref.params)
    # the pair's columns are normalized again (norms 1 to rounding): the same tensor to a few eps
    np.testing.assert_allclose(as_target(pair).to_dense(), t.to_dense(), rtol=1e-14, atol=1e-15)
    # a tuple is one target, used for every seed; a list holds one target per seed
    runs = ot.decompose_batch(triple, 6, seeds=[1, 2], max_steps=100)
    np.testing.assert_array_equal(runs[0].params, ref.params)
    with pytest.raises(ot.OvertensorError, match="got a tuple of 4"):
        ot.decompose((1, 2, 3, 4), 3)
    with pytest.raises(ot.OvertensorError, match="cannot decompose a str"):
        ot.decompose("t.npz", 3)


def test_symcp_round_trips_through_tensorly():
    t = ot.make_target(7, 3, 4, kind="gaussian", weights=[2.0, 1.0, 0.5], seed=3)
    cp = t.to_tensorly()
    assert len(cp.factors) == 4 and cp.factors[0].shape == (7, 3)
    np.testing.assert_allclose(tl.cp_to_tensor(cp), t.to_dense(), rtol=1e-12, atol=1e-14)
    back = ot.SymCP.from_tensorly(cp)
    np.testing.assert_array_equal(back.vectors, t.vectors / np.linalg.norm(t.vectors, axis=1, keepdims=True))
    np.testing.assert_allclose(back.weights, t.weights, rtol=1e-15)
