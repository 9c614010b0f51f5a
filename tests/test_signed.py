"""Signed models fit even-order targets with weights of both signs, for every gradient method."""

from __future__ import annotations

import numpy as np
import pytest

import overtensor as ot
from overtensor import OvertensorError
from overtensor.solvers.beyond_lazy import refresh


def mixed_target() -> ot.SymCP:
    """Order 4, orthonormal components with weights 1, -0.8, 0.6 (an ICA-like cumulant)."""
    S = ot.make_target(5, 3, 4, seed=1)
    return ot.SymCP(np.array([1.0, -0.8, 0.6]), S.vectors, 4)


@pytest.mark.parametrize("method", ["gd", "beyond_lazy"])
def test_a_signed_model_fits_what_an_unsigned_one_cannot(method):
    target = mixed_target()
    unsigned = ot.decompose(target, 6, method, **({"max_steps": 300} if method == "gd" else {"max_epochs": 2}))
    signed = ot.decompose(target, 6, method, signs="half")
    # a positive-weight model cannot go below the -0.8 term: ‖0.8 a^{⊗4}‖ / ‖T‖ = 0.8 / sqrt(2) ≈ 0.566
    assert unsigned.relative_error >= 0.5
    assert signed.relative_error <= 1e-4
    # checked independently of the loop's estimate, on the returned (signed) model
    assert signed.model.distance(target) <= 1e-4 * target.norm()
    assert np.sum(signed.model.weights < -0.1) >= 1


def test_lazy_gd_accepts_signs_and_reports_its_own_error():
    target = mixed_target()
    r = ot.decompose(target, 4, "lazy_gd", signs=[1, 1, -1, -1], max_steps=50)
    # the model α(T(W) - T(W_0)) is returned, so its distance is the reported error
    assert abs(r.model.distance(target) / target.norm() - r.relative_error) <= 1e-8


def test_signed_moment_difference_is_fitted():
    """A difference of two fourth moments: weights +w_j on one data set's points, -w_j on the other's."""
    rng = np.random.default_rng(3)
    Q = np.linalg.qr(rng.standard_normal((5, 4)))[0].T
    a, b = rng.choice(2, 400), 2 + rng.choice(2, 300)
    target = ot.moment_tensor(Q[a], 4) - ot.moment_tensor(Q[b], 4)  # two implicit moments, a TensorSum
    truth = ot.SymCP(np.concatenate([np.bincount(a) / 400, -np.bincount(b)[2:] / 300]), Q, 4)
    r = ot.decompose(target, 8, "beyond_lazy", signs="half")
    assert r.relative_error <= 1e-4
    assert r.model.distance(truth) <= 2e-4 * truth.norm()  # against the weights counted directly


@pytest.mark.parametrize("signs,match", [
    ("all", r"signs of method 'gd' must be 'half' or a list of m values \+1/-1, got 'all'"),
    ([1, -1, 1], r"signs must be 'half' or 4 values"),
    ([1, -1, 1, 0.5], r"signs must be 'half' or 4 values"),
])
def test_bad_signs(signs, match):
    with pytest.raises(OvertensorError, match=match):
        ot.decompose(mixed_target(), 4, "gd", signs=signs, max_steps=1)


def test_signs_need_the_balanced_model():
    with pytest.raises(OvertensorError, match="balanced parameterization"):
        ot.decompose(mixed_target(), 4, "gd", signs="half", parameterization="plain", max_steps=1)


def test_merges_stay_within_one_sign():
    v = np.array([1.0, 0.0, 0.0])
    W = np.stack([v, v, v, 0.5 * v])  # four copies of one direction
    out = refresh(W, np.random.default_rng(0), init_scale=1e-3, threshold=1e-6, merge_cos=0.99, order=4,
                  signs=np.array([1.0, -1.0, 1.0, -1.0]))
    # + group: masses 1 + 1 = 2 in one slot; - group: 1 + 0.25 in one slot; two slots freed and re-drawn
    masses = np.sum(out.W**2, axis=1)
    np.testing.assert_allclose(sorted(masses)[-2:], [1.25, 2.0], rtol=1e-12)
    assert out.merged == 2


def test_whitened_ica_cumulant_has_kurtoses_of_both_signs():
    """x = A s + b over every combination of source atoms, so the sample moments are the population's.

    Sources: two Rademacher (excess kurtosis -2) and one taking ±2 w.p. 1/8 each, else 0
    (kurtosis 1); whitened z = (x - E x) W has E[z^{⊗4}] - G = Σ_j κ_j (Wᵀ a_j)^{⊗4} exactly.
    """
    import itertools

    rademacher, spiky = [-1.0, 1.0], [2.0, -2.0] + [0.0] * 6
    S = np.array(list(itertools.product(rademacher, spiky, rademacher)))  # (32, 3), mean 0, E[s sᵀ] = I
    rng = np.random.default_rng(4)
    A, b = rng.standard_normal((3, 3)) + 2 * np.eye(3), rng.standard_normal(3)
    M4 = ot.moment_tensor(S @ A.T + b, 4)
    cov = M4.second_moment - np.outer(M4.mean, M4.mean)
    evals, U = np.linalg.eigh(cov)
    W = U / np.sqrt(evals)  # (d, k): z = (x - μ) W has E[z zᵀ] = I
    K4 = M4.transformed(W, center=M4.mean) - ot.CorrectionG(3)
    truth = ot.SymCP([-2.0, 1.0, -2.0], (W.T @ A).T, 4)  # rows Wᵀ a_j, orthonormal
    np.testing.assert_allclose(truth.vectors @ truth.vectors.T, np.eye(3), atol=1e-10)
    # the identity is exact; rounding of the 32-row sums and of eigh leaves ~1e-12
    assert ot.transform(K4, np.eye(3)).norm() == pytest.approx(truth.norm(), rel=1e-10)
    fit = ot.decompose(K4, 6, "beyond_lazy", signs="half")  # re-draws free a component stuck on a taken direction
    assert fit.relative_error <= 1e-4
    assert fit.model.distance(truth) <= 1e-4 * truth.norm()
    assert ot.decompose(K4, 4, "gd", max_steps=300).relative_error >= 0.5  # unsigned: the -2 terms stay
