"""Loss and gradient against brute-force dense computations and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import EPS, contract_all_but_one, dense_from, outer_power

from overtensor import DenseSymTensor, make_target
from overtensor.solvers.objective import evaluate


def brute_model(W: np.ndarray, order: int, parameterization: str) -> np.ndarray:
    norms = np.linalg.norm(W, axis=1)
    if parameterization == "balanced":
        return sum(n ** (2 - order) * outer_power(w, order) for n, w in zip(norms, W) if n > 0)
    return sum(outer_power(w, order) for w in W)


def brute_loss(W, Tstar, order, reg, parameterization):
    R = brute_model(W, order, parameterization) - Tstar
    return 0.5 * np.sum(R**2) + 0.5 * reg * np.sum(W**2)


def brute_grad(W, Tstar, order, reg, parameterization):
    """Gradient from the dense residual and the chain rule on raw w_i (no w̄ shortcut)."""
    R = brute_model(W, order, parameterization) - Tstar
    grad = np.zeros_like(W)
    for i, w in enumerate(W):
        n = np.linalg.norm(w)
        Rw = contract_all_but_one(R, w)  # R(w^{⊗(l-1)}, ·)
        if parameterization == "balanced":
            grad[i] = (2 - order) * n ** (-order) * np.dot(Rw, w) * w + order * n ** (2 - order) * Rw
        else:
            grad[i] = order * Rw
    return grad + reg * W


CASES = [(order, d, param) for order in (2, 3, 4) for d in (2, 4, 6) for param in ("balanced", "plain")]


@pytest.mark.parametrize("order,d,param", CASES)
def test_loss_and_gradient_match_dense_brute_force(order, d, param):
    rng = np.random.default_rng(100 * order + d)
    target = make_target(d, 2, order, kind="gaussian", weights=[1.0, 0.7], seed=order + d)
    Tstar = dense_from(target.weights, target.vectors, order)
    W = rng.standard_normal((5, d))
    reg = 0.3
    for op in (target.op, DenseSymTensor(Tstar).op):
        ev = evaluate(W, op, reg, param)
        loss = brute_loss(W, Tstar, order, reg, param)
        grad = brute_grad(W, Tstar, order, reg, param)
        # floor: the brute force sums d^l <= 1296 entries (1296·eps = 3e-13 relative); the library's
        # ‖R‖² = Σ s_i(Rv_i - Qv_i) + ‖T*‖² cancels terms of size ‖T(W)‖² + ‖T*‖² ~ 2‖R‖² at this
        # random W far from T*, (2m + r + d)·eps·2 = 8e-15 relative: 1e-10 is 300x above both
        assert abs(float(ev.loss) - loss) <= 1e-10 * abs(loss)
        # floor: d^(l-1) <= 216 summed products per entry, 216·eps·max|grad| = 5e-14·max|grad|
        assert np.max(np.abs(ev.grad - grad)) <= 1e-10 * np.max(np.abs(grad))


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("param", ["balanced", "plain"])
def test_gradient_matches_central_finite_differences(order, param):
    rng = np.random.default_rng(order)
    target = make_target(5, 3, order, kind="gaussian", seed=order)
    W = rng.standard_normal((4, 5)) * 0.8
    ev = evaluate(W, target.op, 0.1, param)
    h = 1e-6
    fd = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[idx] = h
        fd[idx] = (float(evaluate(W + E, target.op, 0.1, param).loss)
                   - float(evaluate(W - E, target.op, 0.1, param).loss)) / (2 * h)
    # floor: truncation h²·|∂³L|/6 ~ 1e-12·1e2 = 1e-10, plus the loss's rounding over h: its ‖R‖²
    # formula (loss ~ 60 here) carries ~(2m + r + d)·eps·2L = 4e-13, /h = 4e-7; against max|grad| =
    # 20-50 both are <= 2e-8 relative, so 1e-6 keeps a 50x margin
    assert np.max(np.abs(fd - ev.grad)) <= 1e-6 * np.max(np.abs(ev.grad))


def test_factored_and_dense_targets_agree_at_larger_size():
    target = make_target(6, 4, 3, kind="gaussian", seed=3)
    dense = DenseSymTensor(target.to_dense())
    W = np.random.default_rng(1).standard_normal((7, 6))
    a, b = evaluate(W, target.op), evaluate(W, dense.op)
    # floor (two summation orders): the dense contraction sums d^(l-1) = 36 products per entry and
    # ‖R‖² cancels 2m + r + d = 24 terms of size ~‖R‖²: (36 + 24)·eps = 1.3e-14 relative
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12)
    # per entry 36·eps·Σ|products|, Σ|products| ~ max|grad| = 58 here: 5e-13 absolute, under 1e-12
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_zero_component_has_zero_gradient_and_no_nan():
    target = make_target(4, 2, 3, seed=0)
    W = np.random.default_rng(0).standard_normal((3, 4))
    W[1] = 0.0
    ev = evaluate(W, target.op, 0.5)
    assert np.all(np.isfinite(ev.grad))
    np.testing.assert_array_equal(ev.grad[1], 0.0)
    # the zero row contributes nothing: same loss as without it (up to the regularizer of zero)
    # floor: the zero row changes the summation order of 2m + r + d = 12 terms of size ~loss: 12·eps = 3e-15
    np.testing.assert_allclose(ev.loss, evaluate(W[[0, 2]], target.op, 0.5).loss, rtol=1e-13)


def test_batched_evaluation_equals_single():
    targets = [make_target(5, 2, 3, kind="gaussian", seed=s) for s in range(3)]
    from overtensor.tensors.kernels import FactoredOp

    op = FactoredOp(np.stack([t.weights for t in targets]), np.stack([t.vectors for t in targets]), 3)
    W = np.random.default_rng(0).standard_normal((3, 4, 5))
    batched = evaluate(W, op, 0.2)
    for b, t in enumerate(targets):
        single = evaluate(W[b], t.op, 0.2)
        # a stacked matmul may block its sums unlike the 2-d one: floor 2m + r + d = 15 terms, 15·eps
        # = 3e-15 relative to the loss; per gradient entry 15·eps·max|grad| absolute (an entry that
        # cancels to ~0 keeps that absolute error: the old atol 1e-14 was below it at max|grad| = 35)
        np.testing.assert_allclose(batched.loss[b], single.loss, rtol=1e-13)
        gmax = np.max(np.abs(single.grad))
        np.testing.assert_allclose(batched.grad[b], single.grad, rtol=1e-12, atol=100 * EPS * gmax)


SIGNS = np.array([1.0, -1.0, -1.0, 1.0, -1.0])


@pytest.mark.parametrize("order", [2, 3, 4])
def test_signed_loss_and_gradient_match_dense_brute_force(order):
    """T(W) = Σ σ_i ‖w_i‖^{2-l} w_i^{⊗l}: the dense model and the chain rule on raw w_i, signs applied."""
    rng = np.random.default_rng(order)
    d = 4
    target = make_target(d, 2, order, kind="gaussian", weights=[1.0, 0.7], seed=order)
    Tstar = dense_from(target.weights * [1.0, -1.0], target.vectors, order)  # weights of both signs
    W = rng.standard_normal((5, d))
    norms = np.linalg.norm(W, axis=1)
    model = sum(s * n ** (2 - order) * outer_power(w, order) for s, n, w in zip(SIGNS, norms, W))
    R = model - Tstar
    loss = 0.5 * np.sum(R**2) + 0.5 * 0.3 * np.sum(W**2)
    grad = np.stack([s * ((2 - order) * n ** (-order) * np.dot(contract_all_but_one(R, w), w) * w
                          + order * n ** (2 - order) * contract_all_but_one(R, w))
                     for s, n, w in zip(SIGNS, norms, W)]) + 0.3 * W
    ev = evaluate(W, DenseSymTensor(Tstar).op, 0.3, "balanced", signs=SIGNS)
    assert abs(float(ev.loss) - loss) <= 1e-10 * abs(loss)  # a few dense sums of O(1) terms
    assert np.max(np.abs(ev.grad - grad)) <= 1e-10 * np.max(np.abs(grad))


def test_signed_gradient_matches_central_finite_differences():
    rng = np.random.default_rng(7)
    target = make_target(5, 3, 4, kind="gaussian", seed=4)
    W = rng.standard_normal((5, 5)) * 0.8

    def loss(V):
        return float(evaluate(V, target.op, 0.1, signs=SIGNS).loss)

    h = 1e-6
    fd = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[idx] = h
        fd[idx] = (loss(W + E) - loss(W - E)) / (2 * h)
    # central differences: O(h²) truncation plus eps·L/h rounding, ~1e-8 of the gradient's scale
    assert np.max(np.abs(fd - evaluate(W, target.op, 0.1, signs=SIGNS).grad)) <= 1e-6 * np.max(np.abs(fd))


def test_all_plus_signs_equal_the_unsigned_model():
    target = make_target(4, 2, 4, seed=1)
    W = np.random.default_rng(2).standard_normal((3, 4))
    a, b = evaluate(W, target.op, 0.2), evaluate(W, target.op, 0.2, signs=np.ones(3))
    np.testing.assert_array_equal(a.grad, b.grad)
    assert float(a.loss) == float(b.loss)
