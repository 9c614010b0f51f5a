"""S_a, G and sums of terms against dense tensors built entry by entry, and a corrected-moment fit.

Tolerance: sums of at most a few hundred O(1) terms, ~n·eps < 1e-13 relative; we allow 1e-12.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import contract_all_but_one, random_symmetric

import overtensor as ot
from overtensor import CorrectionG, CorrectionS, DenseSymTensor, OvertensorError, TensorSum, moment_tensor
from overtensor.tensors.corrections import inner

RTOL = 1e-12


def brute_s(a: np.ndarray) -> np.ndarray:
    """Σ_i sym(a ⊗ e_i ⊗ e_i) as the sum over the three placements of a, entry by entry."""
    d = a.size
    S = np.zeros((d, d, d))
    for i, j, k in itertools.product(range(d), repeat=3):
        S[i, j, k] = a[i] * (j == k) + a[j] * (i == k) + a[k] * (i == j)
    return S


def brute_g(d: int) -> np.ndarray:
    G = np.zeros((d,) * 4)
    for i, j, k, l in itertools.product(range(d), repeat=4):
        G[i, j, k, l] = (i == j) * (k == l) + (i == k) * (j == l) + (i == l) * (j == k)
    return G


def dense_moment(X: np.ndarray, order: int) -> np.ndarray:
    letters = "abcd"[:order]
    return np.einsum(",".join("n" + c for c in letters) + "->" + letters, *([X] * order)) / X.shape[0]


def close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= RTOL * scale


def test_s_and_g_match_brute_force():
    rng = np.random.default_rng(0)
    a, Y = rng.standard_normal(4), rng.standard_normal((3, 4))
    for T, D in ((CorrectionS(a), brute_s(a)), (CorrectionG(4), brute_g(4))):
        np.testing.assert_allclose(T.to_dense(), D, rtol=0, atol=1e-15)
        expect = np.stack([contract_all_but_one(D, y) for y in Y])
        np.testing.assert_allclose(T.contract(Y), expect, rtol=RTOL, atol=RTOL * np.abs(expect).max())
        np.testing.assert_allclose(T.evaluate(Y), np.sum(expect * Y, axis=1), rtol=RTOL)
        assert close(T.norm() ** 2, np.sum(D**2), np.sum(D**2))


@pytest.mark.parametrize("order", [3, 4])
def test_every_pair_of_terms_has_the_dense_inner_product(order):
    rng = np.random.default_rng(order)
    d = 3
    X, Z = rng.standard_normal((40, d)), rng.standard_normal((30, d))
    structured = [CorrectionS(rng.standard_normal(d)), CorrectionS(rng.standard_normal(d))] if order == 3 \
        else [CorrectionG(d)]
    terms = structured + [
        DenseSymTensor(random_symmetric(d, order, rng)),
        ot.make_target(d, 2, order, kind="gaussian", seed=1),
        moment_tensor(X, order, chunk_size=7),
        moment_tensor(Z, order),
    ]
    dense = [t.to_dense() for t in terms]
    for (s, Ds), (t, Dt) in itertools.product(zip(terms, dense), repeat=2):
        expect = float(np.sum(Ds * Dt))
        assert close(inner(s, t), expect, np.linalg.norm(Ds) * np.linalg.norm(Dt)), (s, t)


def test_sum_contracts_and_norms_like_its_dense_sum():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((60, 3)) + 0.5
    M = moment_tensor(X, 3)
    S = ot.make_target(3, 2, 3, kind="gaussian", seed=2)
    D = DenseSymTensor(random_symmetric(3, 3, rng))
    T = M - 0.7 * CorrectionS(M.mean) + S.scaled(0.5) + D  # operators build one flat sum
    assert isinstance(T, TensorSum) and len(T.terms) == 4
    dense = dense_moment(X, 3) - 0.7 * brute_s(X.mean(axis=0)) + 0.5 * S.to_dense() + D.array
    Y = rng.standard_normal((4, 3))
    expect = np.stack([contract_all_but_one(dense, y) for y in Y])
    np.testing.assert_allclose(T.contract(Y), expect, rtol=RTOL, atol=RTOL * np.abs(expect).max())
    assert close(T.norm_sq(), np.sum(dense**2), np.sum(dense**2))
    np.testing.assert_allclose(T.to_dense(), dense, rtol=RTOL, atol=RTOL * np.abs(dense).max())
    # subtracting from a SymCP on the left goes through the reflected operator
    left = S - M
    assert close(left.norm_sq(), np.sum((S.to_dense() - dense_moment(X, 3)) ** 2), np.sum(dense**2))


def test_corrected_third_moment_of_a_spherical_mixture_is_exactly_its_means():
    """Each mean μ_j with the 2d points μ_j ± s e_i: E[x^{⊗3}] = Σ w_j μ_j^{⊗3} + (s²/d) S_{E[x]} exactly."""
    rng = np.random.default_rng(6)
    d, s = 5, 0.3
    means = 2.0 * np.linalg.qr(rng.standard_normal((d, 2)))[0].T
    copies = [3, 1]  # weights 3/4, 1/4 by repetition
    offsets = np.concatenate([s * np.eye(d), -s * np.eye(d)])
    X = np.concatenate([np.tile(mu + offsets, (c, 1)) for mu, c in zip(means, copies)])
    M3 = moment_tensor(X, 3)
    target = M3 - (s**2 / d) * CorrectionS(M3.mean)
    truth = ot.SymCP([0.75, 0.25], means, 3)
    assert abs(ot.transform(target, np.eye(d)).norm_sq() - truth.norm() ** 2) <= 1e-12 * truth.norm() ** 2
    result = ot.decompose(target, 2, "power", seed=0)
    # the identity is exact, so only rounding separates the fit from the truth
    assert result.model.distance(truth) <= 1e-8 * truth.norm()


def test_batches_of_a_sum_share_its_terms():
    X = np.random.default_rng(7).standard_normal((50, 3))
    T = moment_tensor(X, 3) - 0.1 * CorrectionS(np.ones(3))
    batch = ot.decompose_batch(T, 2, "gd", seeds=[0, 1], max_steps=10, tol=0, step_size=0.2)
    single = ot.decompose(T, 2, "gd", seed=1, max_steps=10, tol=0, step_size=0.2)
    # the same arithmetic on a (2, m, d) batch: equal to rounding of the batched products
    np.testing.assert_allclose(batch[1].params, single.params, rtol=0, atol=RTOL * np.abs(single.params).max())


def test_transform_of_each_kind_matches_the_dense_transform():
    rng = np.random.default_rng(8)
    d, k = 4, 2
    W = rng.standard_normal((d, k))
    X = rng.standard_normal((30, d))
    terms = [ot.make_target(d, 2, 3, kind="gaussian", seed=3), moment_tensor(X, 3), CorrectionS(np.ones(d)),
             DenseSymTensor(random_symmetric(d, 3, rng))]
    for t in terms + [TensorSum(terms, [1.0, -0.5, 0.2, 2.0])]:
        expect = np.einsum("abc,ai,bj,ck->ijk", t.to_dense(), W, W, W)
        got = ot.transform(t, W)
        assert got.dim == k
        np.testing.assert_allclose(got.to_dense(), expect, rtol=RTOL, atol=RTOL * np.abs(expect).max())


@pytest.mark.parametrize("build,match", [
    (lambda: CorrectionS([np.nan, 1.0]), r"a must be a finite \(d,\) vector"),
    (lambda: CorrectionG(0), r"dim must be an integer >= 1, got 0"),
    (lambda: CorrectionS(np.ones(3)) + CorrectionG(3), r"terms differ in shape"),
    (lambda: TensorSum([CorrectionG(2)], [np.inf]), r"coefficients must be finite"),
    (lambda: ot.transform(CorrectionG(2), np.ones((3, 2))), r"W must be a finite \(2, k\) array"),
])
def test_bad_terms(build, match):
    with pytest.raises(OvertensorError, match=match):
        build()


def test_a_sum_runs_on_another_array_library():
    pytest.importorskip("array_api_strict")
    X = np.random.default_rng(9).standard_normal((40, 3))
    T = moment_tensor(X, 4) - 0.5 * CorrectionG(3) + ot.make_target(3, 1, 4, seed=0)
    a = ot.decompose(T, 2, "gd", max_steps=5, tol=0, step_size=0.1, backend="array_api_strict")
    b = ot.decompose(T, 2, "gd", max_steps=5, tol=0, step_size=0.1)
    # the same float64 arithmetic in another library: equal to rounding
    np.testing.assert_allclose(a.params, b.params, rtol=0, atol=RTOL * np.abs(b.params).max())
