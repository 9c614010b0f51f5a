"""The fused step of solvers/step.py against W - η ∇L(W) from objective.evaluate.

evaluate's gradient is tested against dense brute force and finite differences
(test_objective.py). Both arrangements compute the same update in another
order: each entry of the new W is a sum of at most m + r + 2 products, so the
two agree to a few (m + r) eps relative to the largest term. The largest term is
the row's own |w_i| (the update is small against it), so the bound 1e-12 of
max|W_next| holds with a wide margin for these sizes (m + r <= 70: 70 eps = 1.6e-14).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import overtensor as ot
from overtensor.backend import array_namespace
from overtensor.solvers import step as step_module
from overtensor.solvers.objective import evaluate
from overtensor.solvers.problem import make_problem
from overtensor.solvers.step import arrangement, balanced_step
from overtensor.tensors.kernels import map_arrays

# stacked: m < d, m = d, m = 1.5d, m = 4d below SMALL_ENTRIES; blocked: (120, 20), m = 6d above it
SHAPES = [(6, 20), (12, 12), (30, 20), (40, 10), (120, 20)]


def _reference(W, op, eta, reg, target_sq, signs=None):
    ev = evaluate(W, op, reg, "balanced", target_sq, signs)
    return W - np.asarray(eta)[..., None] * ev.grad, ev


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("m,d", SHAPES)
@pytest.mark.parametrize("dense", [False, True])
def test_step_equals_gradient_step(order, m, d, dense):
    target = ot.make_target(d, 3, order, kind="gaussian", weights=[1.0, 0.6, 0.3], seed=order)
    if dense and d ** order <= 20**3:
        target = ot.DenseSymTensor(target.to_dense())
    problem = make_problem([target, target], m, [0, 1])
    rng = np.random.default_rng(m + d + order)
    W = rng.standard_normal((2, m, d)) * 0.5
    W[0, 1] = 0.0  # a zero row stays zero
    eta = np.array([[0.05], [0.02]])  # one step size per run, (B, 1)
    want, ev = _reference(W, problem.op, eta, 1e-2, problem.target_sq)
    got = balanced_step(array_namespace(W), W, problem.op, eta, 1e-2)
    scale = np.max(np.abs(want))
    assert np.max(np.abs(got.W - want)) <= 1e-12 * scale
    np.testing.assert_array_equal(got.W[0, 1], 0.0)
    # loss and residual: the same Gram sums in another order, ~ (m + r) eps of ‖T(W)‖² + ‖T*‖²
    bound = 1e-12 * (np.asarray(ev.loss) + problem.target_sq)
    assert np.all(np.abs(got.loss(np, 1e-2, problem.target_sq) - ev.loss) <= bound)
    assert np.all(np.abs(got.residual_sq(np, problem.target_sq) - ev.residual_sq) <= bound)


@pytest.mark.parametrize("m,d", SHAPES)
def test_signed_step_equals_signed_gradient_step(m, d):
    # even order, weights of both signs; the same floor as above
    vectors = ot.make_target(d, 3, 4, kind="gaussian", seed=1).vectors
    target = ot.SymCP([1.0, -0.6, 0.3], vectors, 4)
    problem = make_problem([target], m, [0])
    W = np.random.default_rng(m * d).standard_normal((1, m, d)) * 0.5
    signs = np.where(np.arange(m) % 2 == 0, 1.0, -1.0)
    want, ev = _reference(W, problem.op, 0.03, 1e-2, problem.target_sq, signs)
    got = balanced_step(array_namespace(W), W, problem.op, 0.03, 1e-2, signs)
    assert np.max(np.abs(got.W - want)) <= 1e-12 * np.max(np.abs(want))
    bound = 1e-12 * (np.asarray(ev.loss) + problem.target_sq)
    assert np.all(np.abs(got.loss(np, 1e-2, problem.target_sq) - ev.loss) <= bound)


def test_arrangement_follows_the_shape_and_target():
    t = ot.make_target(20, 3, 3, seed=0)
    factored = make_problem([t], 6, [0]).op
    dense = make_problem([ot.DenseSymTensor(t.to_dense())], 6, [0]).op
    assert arrangement(factored, 6, 20) == "stacked"
    assert arrangement(factored, 20, 20) == "stacked"
    assert arrangement(factored, 40, 20) == "stacked"  # m <= 2d and small
    assert arrangement(factored, 41, 20) == "stacked"  # m d <= SMALL_ENTRIES: any m / d
    assert arrangement(factored, 120, 20) == "blocked"
    assert arrangement(factored, 400, 200) == "blocked"  # m d >= CARRY_ENTRIES
    assert arrangement(factored, 1000, 1000) == "stacked"
    assert arrangement(dense, 6, 20) == "blocked"


@pytest.mark.parametrize("dense", [False, True])  # the target's vectors in the blocks, or its contraction
def test_blocked_gram_in_several_blocks_equals_one_block(monkeypatch, dense):
    t = ot.make_target(15, 2, 3, kind="gaussian", seed=1)
    problem = make_problem([ot.DenseSymTensor(t.to_dense()) if dense else t], 150, [0])
    assert arrangement(problem.op, 150, 15) == "blocked"
    W = np.random.default_rng(0).standard_normal((1, 150, 15))
    one = balanced_step(array_namespace(W), W, problem.op, 0.01, 0.0)
    # blocks of 7 rows (of m + r = 152 columns, or m = 150 for the dense target): 22 blocks, the last short
    monkeypatch.setattr(step_module, "BLOCK_ENTRIES", 7 * 152)
    many = balanced_step(array_namespace(W), W, problem.op, 0.01, 0.0)
    # each row of G is the same dot products; only the product K @ W̄ may order its sums differently
    assert np.max(np.abs(many.W - one.W)) <= 1e-13 * np.max(np.abs(one.W))
    np.testing.assert_allclose(many.residual_sq(np, problem.target_sq), one.residual_sq(np, problem.target_sq),
                               rtol=1e-13)


def test_a_step_from_the_previous_steps_stack_equals_a_step_from_a_copy(monkeypatch):
    # on NumPy the stacked step writes W into a buffer [W; A] that the next step reads as its S;
    # the same numbers from a fresh copy of W (S built by concatenation) must give the same bits
    monkeypatch.setattr(step_module, "CARRY_ENTRIES", 0)  # carry at this small size too
    t = ot.make_target(30, 4, 3, kind="gaussian", seed=2)
    problem = make_problem([t, t], 8, [0, 1])
    W = np.random.default_rng(1).standard_normal((2, 8, 30))
    xp = array_namespace(W)
    first = balanced_step(xp, W, problem.op, 0.02, 0.0)
    assert step_module._STACKS.get(first.W, problem.op.vectors) is not None  # the buffer is found
    carried = balanced_step(xp, first.W, problem.op, 0.02, 0.0)
    copied = balanced_step(xp, first.W.copy(), problem.op, 0.02, 0.0)
    np.testing.assert_array_equal(carried.W, copied.W)
    # another target of the same shape must not read this buffer's rows of A
    other = make_problem([ot.make_target(30, 4, 3, kind="gaussian", seed=3)] * 2, 8, [0, 1])
    assert step_module._STACKS.get(first.W, other.op.vectors) is None
    np.testing.assert_array_equal(balanced_step(xp, first.W, other.op, 0.02, 0.0).W,
                                  balanced_step(xp, first.W.copy(), other.op, 0.02, 0.0).W)
    assert step_module._STACKS.get(first.W[:, 1:], problem.op.vectors) is None  # not the buffer's leading rows


def _same_values(a, b):
    # equal entry for entry (nan included); a zero may differ in sign, which no later step reads:
    # the step never divides by an entry of W or of its Gram
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("reg", [0.0, 1e-2, "per run"])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("syrk", [False, True])  # W Sᵀ alone, or the first rows of the whole Gram S Sᵀ
def test_numpy_stepper_makes_balanced_steps_values(order, reg, signed, dtype, syrk, monkeypatch):
    monkeypatch.setattr(step_module, "SYRK_ROWS", 1 if syrk else 10**9)
    # stepper() resolves NumPy's stacked step once and runs it in its own buffers; its steps,
    # one after another, must be balanced_step's value for value (a zero row, a
    # per-run η and λ included): that one is tested against the gradient above
    target = ot.make_target(20, 3, order, kind="gaussian", weights=[1.0, 0.6, 0.3], seed=order)
    problem = make_problem([target, target], 6, [0, 1])
    W = (np.random.default_rng(order).standard_normal((2, 6, 20)) * 0.5).astype(dtype)
    W[0, 1] = 0.0
    op = map_arrays(problem.op, lambda x: x.astype(dtype))
    eta = np.array([[0.05], [0.02]], dtype=dtype)
    lam = np.array([[1e-2], [3e-2]], dtype=dtype) if reg == "per run" else reg
    signs = np.where(np.arange(6) % 2 == 0, 1.0, -1.0).astype(dtype) if signed else None
    xp = array_namespace(W)  # the namespace descend resolves (raw NumPy < 2 lacks concat, vecdot)
    step = step_module.stepper(xp, W, op, eta, lam, signs)
    assert not isinstance(step, functools.partial)  # the NumPy step, not the generic one
    want, got = W, W
    for _ in range(4):
        a, b = balanced_step(xp, want, op, eta, lam, signs), step(got)
        for x, y in zip(a, b):
            assert _same_values(x, y)
        want, got = a.W, b.W
    np.testing.assert_array_equal(got[0, 1], 0.0)


@pytest.mark.parametrize("m,d", [(6, 20), (200, 300)])  # NumPy's own stacked step, and the generic one
def test_a_step_without_its_target_values_makes_the_same_step(m, d):
    # the loop asks for T*(w̄_i^{⊗l}) at its checks only; leaving them out must not touch the rest
    target = ot.make_target(d, 3, 3, kind="gaussian", seed=2)
    problem = make_problem([target], m, [0])
    W = np.random.default_rng(1).standard_normal((1, m, d)) * 0.5
    xp = array_namespace(W)
    full = step_module.stepper(xp, W, problem.op, 0.01, 1e-3)(W)
    bare = step_module.stepper(xp, W, problem.op, 0.01, 1e-3)(W, values=False)
    assert bare.target_values is None and full.target_values is not None
    for name in ("W", "masses", "weights", "model_minus_target"):
        np.testing.assert_array_equal(getattr(bare, name), getattr(full, name))
    with pytest.raises(ValueError, match="without its target values"):
        bare.residual_sq(np, problem.target_sq)
