"""SymCP, DenseSymTensor, moment tensors and targets against dense brute force."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import EPS, contract_all_but_one, dense_from, random_symmetric

from overtensor import (
    CorrectionG,
    CorrectionS,
    DenseSymTensor,
    OvertensorError,
    SymCP,
    add_noise,
    make_target,
    moment_tensor,
)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_symcp_operations_match_dense(order):
    rng = np.random.default_rng(order)
    S = SymCP(rng.standard_normal(4), rng.standard_normal((4, 5)), order)
    S2 = SymCP(rng.standard_normal(3), rng.standard_normal((3, 5)), order)
    D, D2 = dense_from(S.weights, S.vectors, order), dense_from(S2.weights, S2.vectors, order)
    # Floors: the factored and the dense computation sum the same products in different orders,
    # so each differs by <= k·eps·(sum of |products|), k the terms summed (first-order bound; here
    # k <= r² + d^l + d = 646). B, built from |λ| and |V|, bounds every such sum entry by entry:
    # ‖B‖² bounds Σ|λ_i λ_j| <v_i, v_j>^l, B(|x|^{⊗l}) the terms of an evaluation. A value that
    # cancels (these draws cancel 2400x in one order-4 evaluation) keeps that absolute error.
    B, B2 = dense_from(np.abs(S.weights), np.abs(S.vectors), order), dense_from(np.abs(S2.weights),
                                                                              np.abs(S2.vectors), order)
    k = 7**2 + 5**order + 5
    np.testing.assert_allclose(S.to_dense(), D, rtol=1e-12, atol=k * EPS * B.max())
    np.testing.assert_allclose(S.norm() ** 2, np.sum(D**2), rtol=1e-12, atol=k * EPS * np.sum(B**2))
    np.testing.assert_allclose(S.inner(S2), np.sum(D * D2), rtol=1e-12, atol=k * EPS * np.sum(B * B2))
    # a distance is the root of a difference of squares: |Δ‖·‖²| <= k·eps·‖B + B2‖², over 2‖D - D2‖
    dist = np.linalg.norm((D - D2).ravel())
    np.testing.assert_allclose(S.distance(S2), dist, rtol=1e-10, atol=k * EPS * np.sum((B + B2) ** 2) / dist)
    X = rng.standard_normal((6, 5))
    expect_c = np.array([contract_all_but_one(D, x) for x in X])
    bound_c = np.array([contract_all_but_one(B, np.abs(x)) for x in np.abs(X)])
    np.testing.assert_allclose(S.contract(X), expect_c, rtol=1e-12, atol=k * EPS * bound_c.max())
    bound_e = np.einsum("md,md->m", bound_c, np.abs(X))
    np.testing.assert_allclose(S.evaluate(X), np.einsum("md,md->m", expect_c, X), rtol=1e-12,
                               atol=k * EPS * bound_e.max())
    np.testing.assert_allclose(S.contract(X[0]), expect_c[0], rtol=1e-12, atol=k * EPS * bound_c[0].max())
    # residual algebra: concatenation and sign, r + r2 terms per entry
    np.testing.assert_allclose((S - S2).to_dense(), D - D2, atol=k * EPS * (B + B2).max())
    np.testing.assert_allclose((-S).to_dense(), -D, atol=k * EPS * B.max())


def _tensors_of_order_3(d: int, rng: np.random.Generator) -> list:
    S = SymCP(rng.standard_normal(2), rng.standard_normal((2, d)), 3)
    M = moment_tensor(rng.standard_normal((20, d)), 3)
    C = CorrectionS(rng.standard_normal(d))
    return [S, DenseSymTensor(S.to_dense()), M, C, M - 0.5 * C]


@pytest.mark.parametrize("kind", range(5))
def test_evaluate_has_one_return_type(kind):
    """One point ``(d,)`` gives a 0-d array (rows ``(m, d)`` give ``(m,)``), for every tensor type."""
    rng = np.random.default_rng(kind)
    T = _tensors_of_order_3(4, rng)[kind]
    X = rng.standard_normal((3, 4))
    one, rows = T.evaluate(X[0]), T.evaluate(X[:1])
    assert isinstance(one, np.ndarray) and one.shape == () and rows.shape == (1,)
    assert one == rows[0]  # the same (1, d) computation: bit for bit
    assert T.evaluate(X).shape == (3,) and T.contract(X[0]).shape == (4,)
    G = CorrectionG(4)
    assert G.evaluate(X[0]).shape == () and G.evaluate(X[0]) == G.evaluate(X[:1])[0]


@pytest.mark.parametrize("order", [2, 3, 4])
def test_dense_operations_match_brute_force(order):
    rng = np.random.default_rng(10 + order)
    A = random_symmetric(4, order, rng)
    T = DenseSymTensor(A)
    X = rng.standard_normal((5, 4))
    expect = np.array([contract_all_but_one(A, x) for x in X])
    # floors as above: k <= d^l + r·d^(l-1) + d = 324 terms, bounded through |A|, |λ| and |V|;
    # these draws cancel 75x in one inner product, 26x in one evaluation
    k = 4**order + 3 * 4 ** (order - 1) + 4
    absA = np.abs(A)
    bound_c = np.array([contract_all_but_one(absA, np.abs(x)) for x in X])
    np.testing.assert_allclose(T.contract(X), expect, rtol=1e-12, atol=k * EPS * bound_c.max())
    np.testing.assert_allclose(T.evaluate(X), np.einsum("md,md->m", expect, X), rtol=1e-12,
                               atol=k * EPS * np.einsum("md,md->m", bound_c, np.abs(X)).max())
    S = SymCP(rng.standard_normal(3), rng.standard_normal((3, 4)), order)
    B = dense_from(np.abs(S.weights), np.abs(S.vectors), order)
    inner = np.sum(A * S.to_dense())
    np.testing.assert_allclose(T.inner(S), inner, rtol=1e-12, atol=k * EPS * np.sum(absA * B))
    np.testing.assert_allclose(S.inner(T), inner, rtol=1e-12, atol=k * EPS * np.sum(absA * B))
    dist = np.linalg.norm((A - S.to_dense()).ravel())
    np.testing.assert_allclose(T.distance(S), dist, rtol=1e-12, atol=k * EPS * np.sum((absA + B) ** 2) / dist)


def test_normalize_keeps_the_tensor_and_makes_unit_vectors():
    rng = np.random.default_rng(0)
    for order in (3, 4):
        S = SymCP(rng.standard_normal(5), rng.standard_normal((5, 3)) * 3, order)
        N = S.normalize()
        # floor: a norm of d = 3 squares, divided and re-normed: (d + 3)·eps = 1.3e-15
        np.testing.assert_allclose(np.linalg.norm(N.vectors, axis=1), 1.0, rtol=1e-14)
        # floor: 5 terms of l + 1 factors, entries up to |w|·|v|^l ~ 1e3 here: ~10·eps·1e3 = 2e-12
        np.testing.assert_allclose(N.to_dense(), S.to_dense(), atol=1e-10)
        if order == 3:
            assert np.all(N.weights > 0)


def test_moment_tensor_equals_dense_average():
    X = np.random.default_rng(0).standard_normal((50, 4))
    M = moment_tensor(X, 3)
    expect = np.einsum("ni,nj,nk->ijk", X, X, X) / 50
    # floor: each entry is a mean of n = 50 products that cancel; 2n·eps·mean|products| absolute
    # (the old atol 1e-14 sat at 50·eps·1 = 1.1e-14, below it for entries that cancel to ~0)
    bound = np.einsum("ni,nj,nk->ijk", *(3 * [np.abs(X)])) / 50
    np.testing.assert_allclose(M.to_dense(), expect, rtol=1e-12, atol=2 * 50 * EPS * bound.max())


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
    # a lowered entry: its asymmetry is what it was lowered by, against any transposition that moves it
    B = random_symmetric(3, 3, np.random.default_rng(1))
    B[2, 0, 1] -= 0.5
    with pytest.raises(OvertensorError, match=r"largest asymmetry 0\.5 "):
        DenseSymTensor(B)
    assert DenseSymTensor(random_symmetric(3, 3, np.random.default_rng(2))).shape == (3, 3, 3)


@pytest.mark.parametrize("bad,count", [(np.nan, 1), (np.inf, 1), (-np.inf, 1)])
def test_dense_non_finite_entries_are_counted(bad, count):
    A = np.zeros((3, 3, 3))
    A[0, 1, 2] = bad
    with pytest.raises(OvertensorError, match=f"dense tensor has {count} non-finite"):
        DenseSymTensor(A)


def test_make_target_kinds_and_weights():
    t = make_target(20, 5, 3, kind="orthonormal", weights="geometric", spread=30, seed=1)
    # floor: Householder QR in d = 20 is orthonormal to ~d·eps = 4e-15
    np.testing.assert_allclose(t.vectors @ t.vectors.T, np.eye(5), atol=1e-12)
    np.testing.assert_allclose(t.weights[[0, -1]], [1.0, 1 / 30])
    c = make_target(10, 4, 3, kind="coherent", coherence=0.3, seed=2)
    G = c.vectors @ c.vectors.T
    # floor: a_j = sqrt(1 - μ) q_j + sqrt(μ) u from QR columns (orthonormal to ~d·eps), then
    # d = 10 dot products: ~(2d + 4)·eps = 5e-15
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
    # floor: the distance is the root of ‖N‖² - 2<N, T> + ‖T‖², d^l = 125 terms of size ~‖T‖²:
    # relative 125·eps·2‖T‖² / (2·(0.1‖T‖)²) = 2.8e-12
    np.testing.assert_allclose(noisy.distance(t) / t.norm(), 0.1, rtol=1e-10)
