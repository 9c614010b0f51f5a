"""Second-order polish, the cancellation-free residual, compression and the exact-answer pipeline.

Tolerances: ``eps = 2.2e-16``. A dense residual ``‖T(W) - T*‖`` formed explicitly rounds by
about ``eps ‖T*‖`` per entry and its norm by a few ``eps ‖T*‖``, so a relative error of 1e-10
is ~1e5 times above the float64 floor of an exactly low-rank target: a polish that converges
reaches it with room; one that stalls (first-order, or the difference-of-squares formula,
which reads 0 below ~1e-8) does not.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import dense_from

import overtensor as ot
from overtensor.solvers.newton import Jacobian
from overtensor.tensors.compress import compress
from overtensor.tensors.residual import residual_norm, signed_factors


def model_dense(W: np.ndarray, sigma: np.ndarray, order: int) -> np.ndarray:
    return dense_from(sigma, W, order)


def fd_jacobian(W: np.ndarray, sigma: np.ndarray, order: int, h: float = 1e-5) -> np.ndarray:
    """``∂ vec T(W) / ∂ vec W`` by central differences, ``(d^l, m d)``."""
    cols = []
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[idx] = h
        cols.append(((model_dense(W + E, sigma, order) - model_dense(W - E, sigma, order)) / (2 * h)).ravel())
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("order,sigma", [(3, [1.0, 1.0, 1.0]), (4, [1.0, -1.0, 1.0])])
def test_gradient_and_normal_products_match_an_explicit_jacobian(order, sigma):
    rng = np.random.default_rng(order)
    d, sigma = 4, np.array(sigma)
    W = rng.standard_normal((3, d))
    target = ot.DenseSymTensor(dense_from([0.7, 0.4], rng.standard_normal((2, d)), order))
    J = fd_jacobian(W, sigma, order)
    # central differences: truncation h²/6 |T'''| ~ 1e-10 and rounding eps/h ~ 1e-11 per entry, relative
    # to entries of order 1-10; 1e-7 leaves three digits of margin
    jac = Jacobian.at(W, sigma, order)
    R = (model_dense(W, sigma, order) - target.array).ravel()
    scale = np.abs(J).max()
    np.testing.assert_allclose(jac.gradient(target).ravel(), J.T @ R, atol=1e-7 * scale * np.abs(R).max() * J.shape[0])
    U = rng.standard_normal(W.shape)
    np.testing.assert_allclose(jac.normal(U).ravel(), J.T @ (J @ U.ravel()), rtol=1e-7, atol=1e-7 * scale**2)
    np.testing.assert_allclose(jac.dense(), J.T @ J, rtol=1e-7, atol=1e-7 * scale**2)
    # the copy the LM steps share at one iterate: the same array, and read-only (each step adds its own μ I)
    np.testing.assert_array_equal(jac.gauss_newton, jac.dense())
    assert jac.gauss_newton is jac.gauss_newton and not jac.gauss_newton.flags.writeable
    # the preconditioner is the exact inverse of the diagonal blocks plus μ I
    mu, V = 0.3, rng.standard_normal(W.shape)
    A = jac.dense()
    for k in range(W.shape[0]):
        block = A[k * d:(k + 1) * d, k * d:(k + 1) * d] + mu * np.eye(d)
        np.testing.assert_allclose(jac.block_solve(V, mu)[k], np.linalg.solve(block, V[k]), rtol=1e-10)


@pytest.mark.parametrize("direct", [True, False])
def test_the_predicted_decrease_is_the_gauss_newton_models(direct, monkeypatch):
    from overtensor.solvers import newton

    rng = np.random.default_rng(11)
    order, d, sigma = 3, 4, np.ones(3)
    W = rng.standard_normal((3, d))
    target = ot.DenseSymTensor(dense_from([0.7, 0.4], rng.standard_normal((2, d)), order))
    if not direct:
        monkeypatch.setattr(newton, "DIRECT_UNKNOWNS", 0)  # CG, whose h solves the system to cg_tol only
    jac, mu = Jacobian.at(W, sigma, order), 0.05
    g = jac.gradient(target)
    step = newton._lm_direction(jac, g, mu, 1e-12)
    assert step.exact is direct and (step.cg_iterations == 0) is direct
    # the explicit model decrease -gᵀh - ½‖J h‖², with J by central differences (1e-7, as above)
    J = fd_jacobian(W, sigma, order)
    explicit = -np.vdot(g, step.h) - 0.5 * np.sum((J @ step.h.ravel()) ** 2)
    assert newton._predicted(jac, g, step.h, mu, step.exact) == pytest.approx(explicit, rel=1e-7)


def test_the_gradient_is_the_finite_difference_of_the_loss():
    rng = np.random.default_rng(5)
    order, d = 3, 5
    target = ot.make_target(d, 2, order, kind="gaussian", seed=1)
    W, sigma = rng.standard_normal((3, d)), np.ones(3)
    dense_target = target.to_dense()

    def loss(X: np.ndarray) -> float:
        return 0.5 * float(np.sum((model_dense(X, sigma, order) - dense_target) ** 2))

    U = rng.standard_normal(W.shape)
    h = 1e-5
    fd = (loss(W + h * U) - loss(W - h * U)) / (2 * h)
    # a factored target goes through its own contraction; central difference error ~ h² |L'''| ~ 1e-9
    assert np.vdot(Jacobian.at(W, sigma, order).gradient(target), U) == pytest.approx(fd, rel=1e-7)


def exact_residual_sq(model: ot.SymCP, target: ot.SymCP) -> Fraction:
    """``‖model - target‖²`` in exact rational arithmetic from the float64 inputs (brute force)."""
    d, l = model.dim, model.order
    total = Fraction(0)
    comps = [(Fraction(w), [Fraction(x) for x in v]) for w, v in zip(model.weights, model.vectors)]
    comps += [(-Fraction(w), [Fraction(x) for x in v]) for w, v in zip(target.weights, target.vectors)]
    for idx in itertools.product(range(d), repeat=l):
        entry = sum(w * np.prod([v[i] for i in idx], dtype=object) for w, v in comps)
        total += entry * entry
    return total


@pytest.mark.parametrize("order,weights", [(3, [1.0, 0.5]), (4, [1.0, -0.5])])
def test_residual_norm_is_exact_where_the_difference_of_squares_reads_zero(order, weights, monkeypatch):
    from overtensor.tensors import residual

    monkeypatch.setattr(residual, "DENSE_FALLBACK", 0)  # the telescoped sum, not its dense fallback
    rng = np.random.default_rng(order)
    V = rng.standard_normal((2, 3))
    target = ot.SymCP(weights, V, order)
    # the model: target components perturbed by 1e-11, and the first split into two duplicates
    dV = 1e-11 * rng.standard_normal((3, 3))
    model = ot.SymCP([0.6 * weights[0], 0.4 * weights[0], weights[1]], np.stack([V[0], V[0], V[1]]) + dV, order)
    exact = float(exact_residual_sq(model, target)) ** 0.5
    assert exact / target.norm() < 1e-9
    # telescoped: every term carries the small differences, so only a few eps relative to ‖R‖ itself
    assert residual_norm(model, target) == pytest.approx(exact, rel=1e-8)
    # dense: rounding eps ‖T*‖ ~ 1e-16 absolute against ‖R‖ ~ 1e-11, so ~1e-5 relative
    assert residual_norm(model, ot.DenseSymTensor(target.to_dense())) == pytest.approx(exact, rel=1e-3)
    # the Gram formula (difference of squares) cannot see it: its rounding is ~1e-8 ‖T*‖
    assert abs(model.distance(target) - exact) > 10 * exact or model.distance(target) == 0.0


def _perturbed(truth: ot.SymCP, scale: float, seed: int) -> ot.SymCP:
    rng = np.random.default_rng(seed)
    return ot.SymCP(truth.weights * (1 + scale * rng.standard_normal(truth.rank)),
                    truth.vectors + scale * rng.standard_normal(truth.vectors.shape), truth.order)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_polish_reaches_1e_10_on_exact_low_rank_dense_targets(seed):
    truth = ot.make_target(10, 4, 3, kind="gaussian", weights="geometric", spread=10, seed=seed)
    dense = truth.to_dense()
    out = ot.polish(_perturbed(truth, 1e-2, seed), ot.DenseSymTensor(dense))
    # independent: the dense residual built entry by entry by the test helpers
    err = np.linalg.norm(dense_from(out.model.weights, out.model.vectors, 3) - dense) / np.linalg.norm(dense)
    assert err <= 1e-10 and out.relative_error <= 1e-10 and out.info["stop"] == "tol"
    assert out.relative_error == pytest.approx(err, rel=1e-2, abs=1e-15)
    assert out.history.relative_error[0] > 1e-3  # it started far away
    m = ot.match(out.model, truth)
    assert m.min_cosine > 1 - 1e-10 and np.max(m.weight_errors) < 1e-8


def test_polish_on_a_factored_order_4_target_with_a_negative_weight():
    truth = ot.SymCP([1.0, -0.6, 0.3], ot.make_target(8, 3, 4, kind="gaussian", seed=4).vectors, 4)
    out = ot.polish(_perturbed(truth, 1e-2, 4), truth)
    dense = truth.to_dense()
    err = np.linalg.norm(dense_from(out.model.weights, out.model.vectors, 4) - dense) / np.linalg.norm(dense)
    assert err <= 1e-10 and out.relative_error <= 1e-10
    assert sorted(np.sign(out.model.weights)) == [-1.0, 1.0, 1.0]  # the sign is kept, not flipped away


def test_polish_stops_by_its_criterion_at_the_least_squares_optimum_of_a_noisy_target():
    from scipy.optimize import least_squares

    truth = ot.make_target(8, 3, 3, kind="gaussian", weights="geometric", seed=0)
    noisy = ot.add_noise(truth, 1e-2, seed=1)
    start = _perturbed(truth, 1e-2, 0)
    out = ot.polish(start, noisy)
    assert out.info["stop"] == "ftol" and out.steps < 100
    # independent optimum: SciPy's MINPACK LM on the dense residual with a finite-difference Jacobian
    sigma, W0 = signed_factors(start.normalize())
    ls = least_squares(lambda x: (dense_from(sigma, x.reshape(W0.shape), 3) - noisy.array).ravel(), W0.ravel(),
                       method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15)
    # at a minimum the residual is second order in the parameter error (~1e-8 for both): ~1e-12 relative
    assert out.relative_error == pytest.approx(np.linalg.norm(ls.fun) / noisy.norm(), rel=1e-9)
    assert 5e-3 < out.relative_error < 1e-2  # noise of 1e-2, part of it fit by the components


def test_polish_as_a_method_and_its_bad_input():
    truth = ot.make_target(6, 2, 3, kind="gaussian", seed=0)
    _sigma, W = signed_factors(_perturbed(truth, 1e-3, 0))
    res = ot.decompose(truth, 2, "polish", init=W)
    assert res.method == "polish" and res.relative_error <= 1e-10
    with pytest.raises(ot.OvertensorError, match="method polish needs init="):
        ot.decompose(truth, 2, "polish")
    with pytest.raises(ot.OvertensorError, match="init has 2 nonzero components but components is 3"):
        ot.decompose(truth, 3, "polish", init=W)
    with pytest.raises(ot.OvertensorError, match=r"init must be a finite \(m, 6\) array, got shape \(2, 5\)"):
        ot.decompose(truth, 2, "polish", init=W[:, :5])
    with pytest.raises(ot.OvertensorError, match="init is all zeros"):
        ot.decompose(truth, 2, "polish", init=np.zeros((2, 6)))
    with pytest.raises(ot.OvertensorError, match=r"ftol of method 'polish' must be a finite number >= 0, got -1\.0"):
        ot.polish(truth, truth, ftol=-1.0)


@pytest.mark.parametrize("dense", [True, False])
def test_polish_is_the_polish_method_bit_for_bit_and_checks_its_target(dense):
    truth = ot.make_target(7, 3, 3, kind="gaussian", weights="geometric", spread=10, seed=2)
    target = ot.DenseSymTensor(truth.to_dense()) if dense else truth
    start = _perturbed(truth, 1e-2, 2)
    direct = ot.polish(start, target)  # runs without a Problem
    method = ot.decompose(target, start.rank, "polish", init=start)
    assert np.array_equal(direct.params, method.params) and direct.relative_error == method.relative_error
    assert direct.steps == method.steps and direct.info == method.info and direct.relative_error <= 1e-10
    with pytest.raises(ot.OvertensorError, match="the target tensor is zero; there is nothing to decompose"):
        ot.polish(start, ot.DenseSymTensor(np.zeros((7, 7, 7))))
    array = ot.polish(start, truth.to_dense())  # an array is a dense target, as for decompose
    assert np.array_equal(array.params, ot.polish(start, ot.DenseSymTensor(truth.to_dense())).params)
    with pytest.raises(ot.OvertensorError, match="target must be a SymCP or DenseSymTensor, got list"):
        ot.polish(start, [1.0, 2.0])
    with pytest.raises(ot.OvertensorError, match="init has order 3, dim 7; the target order 3, dim 6"):
        ot.polish(start, ot.make_target(6, 2, 3, seed=0))
    with pytest.raises(ot.OvertensorError, match="cannot polish a model with no components"):
        ot.polish(ot.SymCP([0.0], np.ones((1, 7)), 3), target)


def test_polish_rejects_a_step_that_overflows_and_goes_on(monkeypatch):
    from overtensor.solvers import newton

    truth = ot.make_target(6, 2, 3, kind="gaussian", seed=0)
    real, calls = newton._lm_direction, []

    def first_overflows(*args: object) -> newton.Direction:
        step = real(*args)
        calls.append(1)
        return step._replace(h=np.full_like(step.h, np.inf)) if len(calls) == 1 else step

    gradients = []
    real_gradient = newton.Jacobian.gradient

    def counted(self: newton.Jacobian, target: object) -> np.ndarray:
        gradients.append(1)
        return real_gradient(self, target)

    monkeypatch.setattr(newton, "_lm_direction", first_overflows)
    monkeypatch.setattr(newton.Jacobian, "gradient", counted)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf in the predicted decrease, on purpose
        out = ot.polish(_perturbed(truth, 1e-2, 0), truth)
    # the infinite step is rejected (an LM iteration without a history row), then it converges
    assert out.info["stop"] == "tol" and out.relative_error <= 1e-10 and out.steps == len(out.history)
    # one gradient per iterate a step was tried from: the retry after the rejection reuses the first
    assert len(gradients) == out.steps - 1


def test_compression_keeps_the_column_space_and_pythagoras_holds():
    truth = ot.make_target(15, 3, 3, kind="gaussian", weights="geometric", spread=100, seed=2)
    exact = compress(ot.DenseSymTensor(truth.to_dense()))
    assert exact.rank == 3
    # the true directions lie in span(U): what U misses is rounding (eps-level eigenvectors)
    assert np.linalg.norm(truth.vectors - truth.vectors @ exact.basis @ exact.basis.T) < 1e-10
    noisy = ot.add_noise(truth, 1e-3, seed=0)
    comp = compress(noisy, rank_tol=0.05)
    model = ot.SymCP([0.5, 0.2], np.random.default_rng(0).standard_normal((2, comp.rank)), 3)
    B = comp.basis
    P = np.einsum("ia,jb,kc,abc->ijk", B @ B.T, B @ B.T, B @ B.T, noisy.array)  # (UUᵀ)^{⊗3} T*
    lifted = comp.lift(model).to_dense()
    lhs = np.sum((noisy.array - lifted) ** 2)
    rhs = np.sum((comp.tensor.array - model.to_dense()) ** 2) + np.sum((noisy.array - P) ** 2)
    assert lhs == pytest.approx(rhs, rel=1e-12)
    with pytest.raises(ot.OvertensorError, match="rank_tol must be 0 or lie in"):
        compress(noisy, rank_tol=1e-9)
    with pytest.raises(ot.OvertensorError, match="compress needs a DenseSymTensor, got SymCP"):
        compress(truth)  # type: ignore[arg-type]


@pytest.mark.parametrize("dense", [True, False])
def test_pipeline_returns_the_true_components_to_1e_10(dense):
    truth = ot.make_target(20, 3, 3, kind="gaussian", weights="geometric", spread=10, seed=3)
    target = ot.DenseSymTensor(truth.to_dense()) if dense else truth
    res = ot.pipeline(target, 12, seed=0, tol=1e-3)
    dense_truth = truth.to_dense()
    err = np.linalg.norm(res.model.to_dense() - dense_truth) / np.linalg.norm(dense_truth)
    assert err <= 1e-10 and res.relative_error <= 1e-10 and res.converged
    # the reported error is the last polish's, not recomputed: it must still be the returned model's.
    # Both are dense residuals of ~n = 3 components: each entry rounds by ~n eps, so they agree to ~1e-14
    assert res.relative_error == pytest.approx(err, rel=1e-2, abs=1e-14)
    m = ot.match(res.model, truth)
    assert not m.missing and not m.spurious and np.max(m.weight_errors) < 1e-8
    assert res.info["compressed_dim"] == (3 if dense else 20)
    assert res.method == "gd+polish" and set(res.history["phase"]) >= {0.0, 1.0}
    assert res.info["descent_relative_error"] <= 1e-3 < res.history.relative_error[0]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "overtensor.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_pipeline_takes_what_decompose_takes():
    # a NumPy array and a TensorLy-style (weights, vectors, order) tuple are the targets they stand for
    truth = ot.make_target(8, 2, 3, kind="gaussian", seed=4)
    options = dict(seed=0, tol=1e-3, max_steps=100)
    want = ot.pipeline(ot.DenseSymTensor(truth.to_dense()), 6, **options)
    got = ot.pipeline(truth.to_dense(), 6, **options)
    assert np.array_equal(got.params, want.params) and got.relative_error == want.relative_error
    factored = ot.pipeline((truth.weights, truth.vectors, 3), 6, **options)
    assert factored.relative_error <= 1e-10 and not ot.match(factored.model, truth).missing


def test_cli_recover_polish(tmp_path: Path):
    truth = ot.make_target(15, 3, 3, kind="gaussian", seed=1)
    np.save(tmp_path / "t.npy", truth.to_dense())
    out = cli("decompose", "t.npy", "-m", "12", "--recover", "--polish", "--json", "-o", "rec.npz", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["recovered_components"] == 3 and summary["relative_error"] <= 1e-10
    rec = ot.load(tmp_path / "rec.npz")
    err = np.linalg.norm(rec.to_dense() - truth.to_dense()) / truth.norm()
    assert err <= 1e-10
    for args, message in ((["--polish"], "--polish needs --recover"),
                          (["--recover", "--polish-steps", "-1"], "--polish-steps must be >= 0, got -1")):
        bad = cli("decompose", "t.npy", "-m", "12", *args, "-o", "bad.npz", cwd=tmp_path)
        assert bad.returncode == 1 and bad.stderr.strip() == f"Error: {message}"
        assert not (tmp_path / "bad.npz").exists()


def test_pipeline_finishes_an_unfinished_descent_by_adding_residual_terms():
    truth = ot.make_target(20, 4, 3, kind="orthonormal", weights="geometric", spread=10, seed=1)
    # 20 gd steps leave the error at ~0.43 with components unfit; growth adds them from the residual
    res = ot.pipeline(ot.DenseSymTensor(truth.to_dense()), 16, seed=1, tol=1e-3, max_steps=20)
    assert res.info["descent_relative_error"] > 0.1 and res.info["added_components"] >= 1
    # what recover kept (fewer than the truth's 4, hence the growth), and what was added to it
    # (merges after the growth may make the final rank smaller)
    assert res.info["recovered_components"] < 4 == res.model.rank
    assert res.info["recovered_components"] + res.info["added_components"] >= res.model.rank
    err = np.linalg.norm(res.model.to_dense() - truth.to_dense()) / truth.norm()
    m = ot.match(res.model, truth)
    assert err <= 1e-10 and not m.missing and not m.spurious


def test_pipeline_on_a_noisy_target_stops_by_ftol_without_fitting_the_noise():
    truth = ot.make_target(12, 3, 3, kind="gaussian", weights="geometric", seed=0)
    noisy = ot.add_noise(truth, 1e-2, seed=1)
    res = ot.pipeline(noisy, 12, seed=0, tol=2e-2)
    assert res.info["polish_stop"] == "ftol" and res.model.rank == 3 and not res.converged
    m = ot.match(res.model, truth)
    assert not m.missing and not m.spurious and m.min_cosine > 0.99
    # the least-squares fit with 3 components removes part of the 1e-2 noise, never more than all of it
    assert 5e-3 < res.relative_error < 1e-2


def test_fewer_components_merges_the_closest_pair_by_the_recovery_rule():
    from overtensor.pipeline import fewer_components

    rng = np.random.default_rng(0)
    V = rng.standard_normal((3, 6))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    V[2] = V[1] + 0.05 * rng.standard_normal(6)
    V[2] /= np.linalg.norm(V[2])
    w = np.array([1.0, 0.5, 0.3])
    merged, dropped = fewer_components(ot.SymCP(w, V, 3))
    u = (w[1] * V[1] + w[2] * V[2]) / np.linalg.norm(w[1] * V[1] + w[2] * V[2])  # brute force
    np.testing.assert_allclose(merged.vectors[-1], u, atol=1e-12)
    assert merged.weights[-1] == pytest.approx(w[1] * (V[1] @ u) ** 3 + w[2] * (V[2] @ u) ** 3, rel=1e-12)
    np.testing.assert_allclose(merged.vectors[0], V[0], atol=1e-12)
    np.testing.assert_allclose(dropped.weights, [1.0, 0.5], rtol=1e-12)  # the lightest is dropped



def test_rank_floor_counts_the_unfolding_rank_no_exact_fit_can_go_below():
    from overtensor.pipeline import rank_floor

    vectors = ot.make_target(20, 3, 3, kind="gaussian", seed=5).vectors
    exact = compress(ot.DenseSymTensor(ot.SymCP([1.0, 0.5, 0.2], vectors, 3).to_dense()))
    assert rank_floor(exact, 1e-10, 3) == 3  # three independent directions: unfolding rank 3
    # a third component of weight 1e-13 leaves the rank-2 fit without it exact to 1e-10 (its
    # norm is 1e-13 against ‖T*‖ >= 1), so the floor must allow 2 there
    faint = compress(ot.DenseSymTensor(ot.SymCP([1.0, 0.5, 1e-13], vectors, 3).to_dense()), rank_tol=0)
    assert rank_floor(faint, 1e-10, 3) == 2


def test_pipeline_tries_no_fit_below_the_rank_floor(monkeypatch):
    import importlib

    module = importlib.import_module("overtensor.pipeline")
    ranks: list[int] = []
    original = module.polish

    def counted(model, target, **options):
        ranks.append(model.rank)
        return original(model, target, **options)

    monkeypatch.setattr(module, "polish", counted)
    truth = ot.make_target(20, 3, 3, kind="gaussian", weights="geometric", spread=10, seed=3)
    res = module.pipeline(ot.DenseSymTensor(truth.to_dense()), 12, seed=0, tol=1e-3)
    assert res.model.rank == 3 and res.relative_error <= 1e-10
    assert min(ranks) == 3 and len(ranks) == res.info["polish_runs"]  # no 2-component trial


def test_fill_adds_every_missing_component_at_once_from_the_residual():
    import importlib

    module = importlib.import_module("overtensor.pipeline")
    # four components in dimension 4: a compressed target (k̂ = r), where the pipeline fills
    truth = ot.make_target(4, 4, 3, kind="gaussian", weights=[1.0, 0.5, 0.1, 0.05], seed=0)
    target = ot.DenseSymTensor(truth.to_dense())
    heavy = ot.SymCP(truth.weights[:2], truth.vectors[:2], 3)
    opts = {"max_steps": 100, "tol": 1e-12, "ftol": 1e-10}
    fit = module.polish(heavy, target, **opts)  # the two heavy ones, fit as well as two can
    assert fit.relative_error > 1e-3
    filled, runs = module._fill(fit, target, 1e-10, 4, 10, opts)
    assert len(runs) == 1 and filled.model.rank == 4 and filled.relative_error <= 1e-10
    m = ot.match(filled.model, truth)
    assert not m.missing and not m.spurious and np.max(m.weight_errors) < 1e-8
    # at the floor, or with no room to add, nothing is tried
    assert module._fill(fit, target, 1e-10, 2, 10, opts)[1] == []
    assert module._fill(fit, target, 1e-10, 4, 0, opts)[1] == []
