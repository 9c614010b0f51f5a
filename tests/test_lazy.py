"""Lazy (NTK) training: the CG projection against brute-force least squares, and scaled lazy GD."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import overtensor as ot
from overtensor.solvers.lazy import Tangent, derivative_rule, lazy_threshold
from overtensor.solvers.base import initial_params
from overtensor.solvers.problem import make_problem

from conftest import EPS, dense_from, outer_power, random_symmetric, residual_floor


def sym_first_axes(A: np.ndarray, order: int) -> np.ndarray:
    """Average over permutations of the first ``order`` axes (the rest are batch axes)."""
    rest = tuple(range(order, A.ndim))
    perms = list(itertools.permutations(range(order)))
    return sum(np.transpose(A, p + rest) for p in perms) / len(perms)


def explicit_jacobian(directions: np.ndarray, order: int) -> np.ndarray:
    """``(d^l, m d)``: column ``(i, a)`` is ``sym(w̄_i^{⊗(l-1)} ⊗ e_a)``, entry by entry."""
    m, d = directions.shape
    cols = []
    for w in directions:
        block = np.multiply.outer(outer_power(w, order - 1), np.eye(d))  # (d,)*(l-1) + (d, d): last axis = a
        cols.append(sym_first_axes(block, order).reshape(d**order, d))
    return np.concatenate(cols, axis=1)


def directions_of(target, m: int, seed: int) -> np.ndarray:
    return initial_params(make_problem([target], m, [seed]), np.ones(1))[0]


@pytest.mark.parametrize("d", [10, 20, 40])
def test_lazy_threshold_rank1_order3(d):
    # measured residuals (SkylakeX, Haswell, Sandybridge, Prescott kernels alike): half the threshold
    # 0.773 (d=10), 0.813 (20), 0.744 (40); 1.25x: 0 to 3e-8, the sqrt(eps) floor (237-364 CG iterations)
    target = ot.make_target(d, 1, 3, seed=d)
    th = lazy_threshold(d, 3)
    assert th == math.comb(d + 2, 3) / d
    below = ot.decompose(target, math.floor(0.5 * th), method="lazy", seed=1)
    above = ot.decompose(target, math.ceil(1.25 * th), method="lazy", seed=1)
    assert below.relative_error >= 0.5 and not below.converged
    assert above.relative_error <= 0.02 and above.info["cg_converged"]
    # the model is P_𝒯 T*: its distance to the target is the reported residual
    # floor: two differences of squares, each <= residual_floor(e, k) with k <= (2m + 1)² terms; at
    # e >= 0.5 that is <= 1e-10 relative, far under 1e-8
    np.testing.assert_allclose(below.model.distance(target) / target.norm(), below.relative_error, rtol=1e-8)
    assert above.model.distance(target) / target.norm() <= 0.02


CASES = [(6, 2, 2), (6, 2, 5), (5, 3, 3), (5, 3, 6), (5, 3, 9), (4, 4, 4), (4, 4, 8), (4, 4, 12)]


@pytest.mark.parametrize("d,order,m", CASES)
def test_cg_residual_equals_lstsq_on_explicit_jacobian(d, order, m):
    rng = np.random.default_rng(d * 100 + order * 10 + m)
    dense = random_symmetric(d, order, rng)
    targets = [ot.DenseSymTensor(dense), ot.make_target(d, 2, order, kind="gaussian", seed=m)]
    for target in targets:
        T = target.to_dense().ravel()
        J = explicit_jacobian(directions_of(target, m, seed=7), order)
        x, *_ = np.linalg.lstsq(J, T, rcond=None)
        brute = np.linalg.norm(T - J @ x) / np.linalg.norm(T)
        result = ot.decompose(target, m, method="lazy", seed=7)
        # Floors. cond: J's condition number on its range (J is rank-deficient in 4 of these cases,
        # redundant tangent directions; np.linalg.cond reads 1e16 there, which made the tolerance
        # eps·cond² vacuous): 2 to 109 in 7 cases, 7.7e4 in (4, 4, 8). The normal equations square
        # it: eps·cond² relative error in the fit; CG stopping at ‖b - KU‖ <= cg_tol‖b‖ leaves
        # ‖J(U - U*)‖ <= cg_tol·cond·‖T‖.
        # The reported residual ‖T‖² - <b, U> cancels m·d terms of size ‖T‖²: δ = m·d·eps in e²,
        # so a zero residual reads as up to sqrt(δ) = 1e-7 (measured 1.8e-8).
        sv = np.linalg.svd(J, compute_uv=False)
        sv = sv[sv > sv[0] * max(J.shape) * EPS]  # lstsq's rank cut
        cond = sv[0] / sv[-1]
        fit = EPS * cond**2 + 1e-10 * cond  # cg_tol's default 1e-10
        e, delta = result.relative_error, m * d * EPS
        np.testing.assert_allclose(e**2, brute**2, atol=delta + 2 * fit * brute + fit**2)
        if brute > 1e-3:
            np.testing.assert_allclose(e, brute, atol=residual_floor(brute, m * d) + fit)
        # the returned model is the projection itself, to the fit's floor
        np.testing.assert_allclose(result.model.to_dense().ravel(), J @ x, atol=2 * fit * np.linalg.norm(T))


def test_gram_is_jacobian_transpose_jacobian():
    rng = np.random.default_rng(0)
    for order in (2, 3, 4):
        W = rng.standard_normal((5, 4))
        W /= np.linalg.norm(W, axis=1, keepdims=True)
        U = rng.standard_normal((5, 4))
        J = explicit_jacobian(W, order)
        # floor: two orders of d^l <= 256 products of unit-vector entries times |U| ~ 1: 256·eps = 6e-14
        np.testing.assert_allclose(Tangent.at(W, order).gram(U).ravel(), J.T @ J @ U.ravel(), atol=1e-12)


@pytest.mark.parametrize("order", [2, 3, 4, 5, 6])
def test_tangent_terms_are_exact(order):
    nodes, coef = derivative_rule(order)
    assert len(nodes) == 2 * math.ceil(order / 2)
    moments = [coef @ nodes**k for k in range(order + 1)]
    # floor: a solved Vandermonde system of size <= 6 with nodes in [-1, 1]: cond <= 1e2, 1e2·eps = 2e-14
    np.testing.assert_allclose(moments, np.eye(order + 1)[1], atol=1e-12)
    rng = np.random.default_rng(order)
    W = rng.standard_normal((3, 4))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    U = rng.standard_normal((3, 4))
    U[1] = 0  # zero rows drop out
    model = Tangent.at(W, order).terms(U)
    assert model.rank == 2 * len(nodes)
    brute = sum(sym_first_axes(np.multiply.outer(outer_power(w, order - 1), u), order) for w, u in zip(W, U))
    # floor: 2h <= 6 rank-one terms of size ~(1 + |U|)^l ~ 1e2 that cancel to the tangent: 6·eps·1e2 = 1.3e-13
    np.testing.assert_allclose(model.to_dense(), brute, atol=1e-12)


def test_lazy_dense_equals_factored_and_batch_equals_single():
    target = ot.make_target(6, 2, 3, seed=3)
    a = ot.decompose(target, 5, method="lazy", seed=4)
    b = ot.decompose(ot.DenseSymTensor(target.to_dense()), 5, method="lazy", seed=4)
    # floors: the dense and factored contractions differ by ~d^(l-1)·eps = 8e-15 relative; CG
    # (cond of this tangent ~10) keeps that to ~cond·1e-14 in U and in e = O(1) here
    np.testing.assert_allclose(a.relative_error, b.relative_error, rtol=1e-10)
    np.testing.assert_allclose(a.params, b.params, atol=1e-10)
    batch = ot.decompose_batch(target, 5, method="lazy", seeds=[4, 5])
    np.testing.assert_allclose(batch[0].params, a.params, atol=1e-12)  # same sums, same order
    assert batch[1].relative_error != a.relative_error
    h = a.history
    assert h.step[0] == 0 and h.relative_error[0] == 1.0 and h.step[-1] == a.steps == a.info["cg_iterations"]


def test_lazy_rejects_bad_options():
    target = ot.make_target(5, 1, 3)
    with pytest.raises(ot.OvertensorError, match=r"cg_tol of method 'lazy' must be a finite number > 0 and < 1, got 0.0"):
        ot.decompose(target, 3, method="lazy", cg_tol=0.0)
    with pytest.raises(ot.OvertensorError, match="max_iter of method 'lazy' must be an integer >= 1, got 0"):
        ot.decompose(target, 3, method="lazy", max_iter=0)


@pytest.fixture(scope="module")
def lazy_gd_runs():
    target = ot.make_target(10, 1, 3, seed=0)
    lazy = ot.decompose(target, 11, method="lazy", seed=1)
    runs = {a: ot.decompose(target, 11, method="lazy_gd", seed=1, alpha=a, max_steps=2000)
            for a in (1.0, 10.0, 100.0, 1000.0)}
    return target, lazy, runs


def test_lazy_gd_movement_shrinks_like_one_over_alpha(lazy_gd_runs):
    _, _, runs = lazy_gd_runs
    move = {a: r.info["movement"] for a, r in runs.items()}
    # measured (2000 steps, all four kernel families): 0.325, 0.0312, 0.00256, 0.000252; a smooth
    # function of α: the ratios 12 and 10 sit well inside [5, 20]
    assert move[1.0] >= 5 * move[100.0]
    for a in (10.0, 100.0):
        assert 5 <= move[a] / move[10 * a] <= 20


def test_lazy_gd_error_tends_to_the_projection_residual(lazy_gd_runs):
    target, lazy, runs = lazy_gd_runs
    # measured (2000 steps, all four kernel families): lazy 0.74305; alpha = 1000 gives 0.74325,
    # alpha = 1 (not lazy) 0.257: margins 25x, 200x and 0.19 above what is asserted
    assert abs(runs[1000.0].relative_error - lazy.relative_error) <= 5e-3
    # nothing in the lazy regime beats the projection, up to CG's stop (cg_tol·cond ~ 1e-9) and the
    # residual's floor (residual_floor(0.74, 2m) = 7e-15): 1e-6 covers both
    assert runs[1000.0].relative_error >= lazy.relative_error - 1e-6
    assert runs[1.0].relative_error <= lazy.relative_error - 0.3
    for r in runs.values():
        # the model is α(T(W) - T(W0)); its distance is the reported error
        # floor: the model α(T(W) - T(W0)) has parts of size ~α·‖T(W0)‖ that cancel: Σ|Gram terms|
        # reaches 6e7·‖T*‖² at α = 1000, so its distance (and the loop's estimate) each carry
        # residual_floor(e, k, scale=Σ|terms|/‖T*‖²), k = (rank + 1)² + d; the plain rtol 1e-6 sat
        # below that floor at α = 1000 (worst case 1e-5; measured 3.5e-9)
        M = r.model
        gram = np.abs(np.outer(M.weights, M.weights) * (M.vectors @ M.vectors.T) ** 3)
        scale = max(np.sum(gram) / target.norm() ** 2, 1.0)
        floor = residual_floor(r.relative_error, (M.rank + 1) ** 2 + 10, scale=scale)
        np.testing.assert_allclose(M.distance(target) / target.norm(), r.relative_error, rtol=1e-6,
                                   atol=2 * floor)
        assert r.history.relative_error[-1] == r.relative_error
        assert r.history["movement"][0] == 0.0 and r.history["movement"][-1] == r.info["movement"]


def test_lazy_gd_starts_from_the_lazy_directions(lazy_gd_runs):
    target, lazy, runs = lazy_gd_runs
    r = runs[100.0]
    W0 = directions_of(target, 11, seed=1) * r.info["init_scale"]
    # floor: W0 is rebuilt by the same operations (bit for bit); W - W0 cancels to 2.6e-3 of |W|,
    # so its m·d = 110 entries carry eps/2.6e-3 = 9e-14 relative each, and the norm adds 110·eps
    np.testing.assert_allclose(np.linalg.norm(r.params - W0) / np.linalg.norm(W0), r.info["movement"], rtol=1e-12)
    # the loss recorded is (1/2α²)‖α(T(W) - T(W0)) - T*‖²: the same residual as the error, so they
    # agree to a few eps (a square, a root, two scalings); 1e-8 leaves room for the floor of one
    # estimate against the other (residual_floor at e = 0.74 with the α² scale: < 1e-9 relative in e²)
    np.testing.assert_allclose(r.history.loss[-1], 0.5 * (r.relative_error * target.norm() / 100.0) ** 2, rtol=1e-8)


def test_lazy_gd_bad_alpha():
    with pytest.raises(ot.OvertensorError, match="alpha of method 'lazy_gd' must be a finite number > 0, got -1"):
        ot.decompose(ot.make_target(5, 1, 3), 3, method="lazy_gd", alpha=-1.0)


def test_shifted_op_is_the_dense_sum():
    from overtensor.tensors.kernels import DenseOp, FactoredOp, ShiftedOp

    from conftest import contract_all_but_one

    rng = np.random.default_rng(3)
    T = random_symmetric(4, 3, rng)
    mu, V = rng.standard_normal(5), rng.standard_normal((5, 4))
    op = ShiftedOp(DenseOp(T[None], 3), np.array([0.3]), FactoredOp(mu[None], V[None], 3))
    S = 0.3 * T + dense_from(mu, V, 3)
    X = rng.standard_normal((2, 4))
    # floor: d^(l-1) + rank = 21 products per entry of size <= ~10 here: 21·eps·10 = 5e-14
    np.testing.assert_allclose(op.contract(X[None])[0], [contract_all_but_one(S, x) for x in X], atol=1e-12)
    # floor: ‖S‖² in two orders, (1 + 5)² Gram terms vs d^l = 64 squares, no cancellation beyond
    # ~10x (Σ|terms| / ‖S‖²): (36 + 64)·eps·10 = 2e-13
    np.testing.assert_allclose(op.norm_sq()[0], np.sum(S**2), rtol=1e-12)


def test_lazy_gd_dense_equals_factored():
    target = ot.make_target(6, 2, 3, seed=1)
    a = ot.decompose(target, 5, method="lazy_gd", seed=2, max_steps=100)
    b = ot.decompose(ot.DenseSymTensor(target.to_dense()), 5, method="lazy_gd", seed=2, max_steps=100)
    # floor: the two contractions differ by ~d^(l-1)·eps = 8e-15 relative per step; lazy GD is
    # close to a linear contraction, so 100 steps add at most ~100x: 1e-12, under 1e-10 (measured
    # equal params here)
    np.testing.assert_allclose(b.params, a.params, atol=1e-10)
    np.testing.assert_allclose(b.relative_error, a.relative_error, rtol=1e-8)
