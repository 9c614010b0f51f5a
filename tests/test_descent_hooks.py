"""descend's hooks: epochs, a per-run λ schedule, a refresh between epochs, a stopping rule.

Each hooked run is checked against the same schedule written out by hand: a loop of the
plain gradient step ``W - η ∇L(W)`` (the gradient formed by ``objective.evaluate``, not the
fused step the loop takes), or, where bookkeeping alone is under test, the same step function
called in a bare loop (deterministic arithmetic: equal bit for bit on any CPU).
"""

from __future__ import annotations

import numpy as np
import pytest

import overtensor as ot
from overtensor.backend import array_namespace
from overtensor.solvers.descent import (
    CHECK_EVERY,
    DescentConfig,
    EpochEnd,
    Hooks,
    Recorder,
    descend,
)
from overtensor.solvers.objective import evaluate
from overtensor.solvers.problem import make_problem
from overtensor.solvers.step import balanced_step
from overtensor.tensors.kernels import map_arrays

XP = array_namespace(np.zeros(1))  # the namespace descend resolves for NumPy arrays (NumPy 1.26 lacks concat)

M, D = 6, 10


@pytest.fixture
def problem():
    t = ot.make_target(D, 3, 3, kind="gaussian", seed=4)
    return make_problem([t, t], M, [0, 1])


def _start(problem) -> np.ndarray:
    return 0.3 * np.random.default_rng(1).standard_normal((problem.size, M, D))


def _by_hand(problem, W: np.ndarray, eta: float, schedule: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """``H_k`` plain gradient steps with ``λ_k`` per run, for each ``(H_k, λ_k (B,))``."""
    W = W.copy()
    for length, lam in schedule:
        for b in range(problem.size):
            op_b = map_arrays(problem.op, lambda x, b=b: x[b:b + 1])
            for _ in range(length):
                ev = evaluate(W[b:b + 1], op_b, float(lam[b]), "balanced", problem.target_sq[b:b + 1])
                W[b] = W[b] - eta * ev.grad[0]
    return W


def test_epochs_follow_a_per_run_reg_schedule(problem):
    W0, eta = _start(problem), 0.02
    lam = {0: np.array([0.1, 0.0]), 1: np.array([0.0, 0.3])}  # the runs differ within each epoch
    seen: list[EpochEnd] = []
    hooks = Hooks(epochs=[3, 4], reg=lambda k, rel: lam[k], on_epoch=seen.append)
    out = descend(W0, problem.op, problem.target_sq, DescentConfig(eta, 0.0, 0.0, 0, 1000), Recorder(2, 0.0),
                  hooks=hooks)
    expected = _by_hand(problem, W0, eta, [(3, lam[0]), (4, lam[1])])
    # floor: the fused step and the formed gradient agree to ~(m + r + d)·eps = 4e-15 relative
    # per step (tests/test_step.py); 7 steps, each Jacobian ‖I - η∇²L‖ <= 1.1 here: < 1e-13
    np.testing.assert_allclose(out.W, expected, rtol=1e-11, atol=1e-13)
    assert list(out.steps) == [7, 7]
    assert [(e.epoch, list(e.runs), list(e.steps)) for e in seen] == [(0, [0, 1], [3, 3]), (1, [0, 1], [7, 7])]
    np.testing.assert_array_equal(seen[1].reg, lam[1])


def test_a_mixed_schedule_in_a_batch_equals_each_run_alone(problem):
    W0 = _start(problem)
    lam = np.array([0.2, 0.0])
    config = DescentConfig(0.02, 0.0, 0.0, 0, 5)

    def run(rows: list[int]) -> np.ndarray:
        p = make_problem([problem.targets[b] for b in rows], M, [0] * len(rows))
        return descend(W0[rows], p.op, p.target_sq, config, Recorder(len(rows), 0.0),
                       hooks=Hooks(epochs=[6, 6], reg=lambda k, rel: lam[rows] * k)).W

    batch = run([0, 1])
    np.testing.assert_array_equal(batch[0], run([0])[0])
    np.testing.assert_array_equal(batch[1], run([1])[0])


def test_refresh_changes_the_moving_runs_between_epochs(problem):
    W0, eta = _start(problem), 0.02
    calls = []

    def refresh(k: int, runs: np.ndarray, W: np.ndarray) -> np.ndarray:
        calls.append((k, list(runs), W.dtype))
        return 0.5 * W

    out = descend(W0, problem.op, problem.target_sq, DescentConfig(eta, 0.0, 0.0, 0, 1000), Recorder(2, 0.0),
                  hooks=Hooks(epochs=[3, 2, 2], refresh=refresh))
    W = W0.copy()
    for length in (3, 2, 2):  # the same step function in a bare loop: the loop's bookkeeping alone differs
        W = W if length == 3 else 0.5 * W
        for _ in range(length):
            W = balanced_step(XP, W, problem.op, eta, 0.0).W
    np.testing.assert_array_equal(out.W, W)
    assert calls == [(1, [0, 1], np.float64), (2, [0, 1], np.float64)]


def test_a_stopping_rule_stops_at_the_first_check_it_holds(problem):
    W0, eta = _start(problem)[:1], 0.02
    p = make_problem([problem.targets[0]], M, [0])
    target = problem.targets[0]

    def stop(rel: np.ndarray, tol: np.ndarray) -> np.ndarray:
        return rel <= 0.9 * first

    W, errors = W0[0].copy(), []
    for _ in range(200):  # the error at each step, from the dense difference, independently
        model = ot.SymCP(np.sum(W**2, axis=1), W / np.linalg.norm(W, axis=1, keepdims=True), 3)
        errors.append(np.linalg.norm(model.to_dense() - target.to_dense()) / np.linalg.norm(target.to_dense()))
        W = balanced_step(XP, W[None], p.op, eta, 0.0).W[0]
    first = errors[0]
    crossed = next(k for k, e in enumerate(errors) if e <= 0.9 * first)
    out = descend(W0, p.op, p.target_sq, DescentConfig(eta, 0.0, 0.0, 199, 1000), Recorder(1, 0.0),
                  hooks=Hooks(stop=stop))
    # checks come every CHECK_EVERY steps (record rows are 1000 apart), so it stops at the first
    # multiple at or after the crossing; the crossing is not within rounding of 0.9 (asserted)
    assert abs(errors[crossed] - 0.9 * first) > 1e-8 and abs(errors[crossed - 1] - 0.9 * first) > 1e-8
    assert out.converged[0] and out.steps[0] == -(-crossed // CHECK_EVERY) * CHECK_EVERY
