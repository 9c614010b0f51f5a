"""SymCP, DenseSymTensor, moment tensors and targets against dense brute force."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import contract_all_but_one, dense_from, random_symmetric

from overtensor import DenseSymTensor, OvertensorError, SymCP, add_noise, make_target, moment_tensor


@pytest.mark.parametrize("order", [2, 3, 4])
def test_symcp_operations_match_dense(order):
    rng = np.random.default_rng(order)
    S = SymCP(rng.standard_normal(4), rng.standard_normal((4, 5)), order)
    S2 = SymCP(rng.standard_normal(3), rng.standard_normal((3, 5)), order)
    D, D2 = dense_from(S.weights, S.vectors, order), dense_from(S2.weights, S2.vectors, order)
    np.testing.assert_allclose(S.to_dense(), D, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(S.norm(), np.linalg.norm(D.ravel()), rtol=1e-12)
    np.testing.assert_allclose(S.inner(S2), np.sum(D * D2), rtol=1e-12)
    np.testing.assert_allclose(S.distance(S2), np.linalg.norm((D - D2).ravel()), rtol=1e-10)
    X = rng.standard_normal((6, 5))
    expect_c = np.array([contract_all_but_one(D, x) for x in X])
    np.testing.assert_allclose(S.contract(X), expect_c, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(S.evaluate(X), np.einsum("md,md->m", expect_c, X),
                               rtol=1e-12)
    assert isinstance(S.evaluate(X[0]), float)
    np.testing.assert_allclose(S.contract(X[0]), expect_c[0], rtol=1e-12)
    # residual algebra
    np.testing.assert_allclose((S - S2).to_dense(), D - D2, atol=1e-12)
    np.testing.assert_allclose((-S).to_dense(), -D, atol=1e-12)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_dense_operations_match_brute_force(order):
    rng = np.random.default_rng(10 + order)
    A = random_symmetric(4, order, rng)
    T = DenseSymTensor(A)
    X = rng.standard_normal((5, 4))
    expect = np.array([contract_all_but_one(A, x) for x in X])
    np.testing.assert_allclose(T.contract(X), expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(T.evaluate(X), np.einsum("md,md->m", expect, X), rtol=1e-12)
    S = SymCP(rng.standard_normal(3), rng.standard_normal((3, 4)), order)
    np.testing.assert_allclose(T.inner(S), np.sum(A * S.to_dense()), rtol=1e-12)
    np.testing.assert_allclose(S.inner(T), np.sum(A * S.to_dense()), rtol=1e-12)
    np.testing.assert_allclose(T.distance(S), np.linalg.norm((A - S.to_dense()).ravel()), rtol=1e-12)


def test_normalize_keeps_the_tensor_and_makes_unit_vectors():
    rng = np.random.default_rng(0)
    for order in (3, 4):
        S = SymCP(rng.standard_normal(5), rng.standard_normal((5, 3)) * 3, order)
        N = S.normalize()
        np.testing.assert_allclose(np.linalg.norm(N.vectors, axis=1), 1.0, rtol=1e-14)
        np.testing.assert_allclose(N.to_dense(), S.to_dense(), atol=1e-10)
        if order == 3:
            assert np.all(N.weights > 0)


def test_moment_tensor_equals_dense_average():
    X = np.random.default_rng(0).standard_normal((50, 4))
    M = moment_tensor(X, 3)
    expect = np.einsum("ni,nj,nk->ijk", X, X, X) / 50
    np.testing.assert_allclose(M.to_dense(), expect, rtol=1e-12, atol=1e-14)


def test_to_dense_refuses_huge():
    S = make_target(5000, 2, 4, kind="gaussian")
    with pytest.raises(OvertensorError, match=r"6\.25e\+14 entries"):
        S.to_dense()


@pytest.mark.parametrize(
    "args,match",
    [
        ((np.ones(2), np.ones((3, 4)), 3), "disagree"),
        ((np.ones(2), np.ones((2, 4)), 1), "order must be >= 2"),
        (([1.0, np.nan], np.ones((2, 4)), 3), "non-finite"),
        ((np.ones(2), np.full((2, 4), np.inf), 3), "non-finite"),
        ((np.ones((2, 2)), np.ones((2, 4)), 3), "weights must be 1-d"),
    ],
)
def test_symcp_validation(args, match):
    with pytest.raises(OvertensorError, match=match):
        SymCP(*args)


def test_dense_symmetry_error_reports_largest_asymmetry():
    A = random_symmetric(3, 3, np.random.default_rng(0))
    A[0, 1, 2] += 0.25
    with pytest.raises(OvertensorError, match=r"not symmetric: largest asymmetry 0\.25"):
        DenseSymTensor(A)
    with pytest.raises(OvertensorError, match="equal axes"):
        DenseSymTensor(np.zeros((3, 4)))


def test_make_target_kinds_and_weights():
    t = make_target(20, 5, 3, kind="orthonormal", weights="geometric", spread=30, seed=1)
    np.testing.assert_allclose(t.vectors @ t.vectors.T, np.eye(5), atol=1e-12)
    np.testing.assert_allclose(t.weights[[0, -1]], [1.0, 1 / 30])
    c = make_target(10, 4, 3, kind="coherent", coherence=0.3, seed=2)
    G = c.vectors @ c.vectors.T
    np.testing.assert_allclose(G[~np.eye(4, dtype=bool)], 0.3, atol=1e-12)
    np.testing.assert_allclose(np.diag(G), 1.0, atol=1e-12)
    g = make_target(10, 12, 4, kind="gaussian", weights=list(range(1, 13)), seed=3)
    np.testing.assert_allclose(np.linalg.norm(g.vectors, axis=1), 1.0)
    a, b = make_target(8, 3, 3, kind="gaussian", seed=7), make_target(8, 3, 3, kind="gaussian", seed=7)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert not np.allclose(a.vectors, make_target(8, 3, 3, kind="gaussian", seed=8).vectors)
    with pytest.raises(OvertensorError, match="rank <= dim"):
        make_target(3, 5, 3)


def test_add_noise_has_the_requested_level_and_is_symmetric():
    t = make_target(5, 2, 3, seed=0)
    noisy = add_noise(t, 0.1, seed=1)
    np.testing.assert_allclose(noisy.distance(t) / t.norm(), 0.1, rtol=1e-10)
