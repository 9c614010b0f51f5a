"""recover / match on hand-built models, recover-then-polish, diagnostics, and the CLI's --recover."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import overtensor as ot
from overtensor.solvers.problem import run_rng
from overtensor.analysis import diagnostics

from conftest import residual_floor


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    G = rng.standard_normal((n, d))
    return G / np.linalg.norm(G, axis=1, keepdims=True)


def near(v: np.ndarray, eps: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at angle about ``eps`` from unit ``v``."""
    u = v + eps * unit(rng, 1, v.size)[0]
    return u / np.linalg.norm(u)


def test_duplicates_merge_into_their_total_mass_and_tiny_masses_are_dropped():
    rng = np.random.default_rng(0)
    truth = ot.make_target(20, 3, 3, weights=[3.0, 2.0, 1.0], seed=0)
    split = np.array([0.5, 0.3, 0.2])
    weights = np.concatenate([c * split for c in truth.weights] + [np.full(4, 1e-4)])
    vectors = np.concatenate([np.repeat(truth.vectors, 3, axis=0), unit(rng, 4, 20)])
    rec = ot.recover(ot.SymCP(weights, vectors, 3))
    assert rec.rank == 3  # the four masses of 1e-4 < 1% of the largest are dropped
    # exact duplicates: mean direction = truth, weight = total mass; heaviest first
    # floor: a mass-weighted mean of 3 copies, normalized over d = 20: (3 + d)·eps = 5e-15
    np.testing.assert_allclose(rec.vectors, truth.vectors, atol=1e-12)
    np.testing.assert_allclose(rec.weights, truth.weights, rtol=1e-12)  # 3 masses: 3·eps
    # with mass_fraction 0 the tiny components stay, each its own cluster
    assert ot.recover(ot.SymCP(weights, vectors, 3), mass_fraction=0.0).rank == 7


def test_near_duplicates_weight_is_the_cluster_tensor_along_the_mean_direction():
    rng = np.random.default_rng(1)
    a = unit(rng, 1, 30)[0]
    V = np.stack([near(a, 0.05, rng) for _ in range(4)])
    s = np.array([0.4, 0.3, 0.2, 0.1])
    rec = ot.recover(ot.SymCP(s, V, 3), cos=0.99)
    assert rec.rank == 1
    u = s @ V / np.linalg.norm(s @ V)  # brute force: mass-weighted mean, then S(u^{⊗3})
    # floor: 4 terms, d = 30 dot products, a cube: (4 + 30 + 3)·eps = 8e-15
    np.testing.assert_allclose(rec.vectors[0], u, atol=1e-12)
    np.testing.assert_allclose(rec.weights[0], sum(si * (v @ u) ** 3 for si, v in zip(s, V)), rtol=1e-12)
    # a cosine threshold above the spread of the cluster splits it
    assert ot.recover(ot.SymCP(s, V, 3), cos=0.9999).rank > 1


def test_even_order_merges_sign_flipped_copies_odd_order_does_not():
    rng = np.random.default_rng(2)
    a, b = unit(rng, 2, 10)
    V = np.stack([a, -a, near(-a, 1e-3, rng), b])
    s = np.array([1.0, 0.6, 0.4, 0.5])
    even = ot.recover(ot.SymCP(s, V, 4))
    assert even.rank == 2
    # not rounding but the merge itself: the copy at angle 1e-3 moves the mean direction (measured
    # 1 - cos = 1.9e-8), the weight by 3e-7 relative, the tensor by 7e-7 (the distance's own floor,
    # sqrt(25·eps)·‖S‖ = 1.5e-7, adds to that); the tolerances sit 10x above
    np.testing.assert_allclose(abs(even.vectors[0] @ a), 1, atol=1e-6)
    np.testing.assert_allclose(even.weights, [2.0, 0.5], rtol=1e-5)
    assert even.distance(ot.SymCP(s, V, 4)) < 1e-5
    odd = ot.recover(ot.SymCP(s, V, 3))
    assert odd.rank == 3  # +a and -a are different order-3 components: 1.0 a^3 and 1.0 (-a)^3
    assert odd.distance(ot.SymCP(s, V, 3)) < 1e-5


def brute_force_pairs(C: np.ndarray) -> tuple[int, ...]:
    """The assignment of true rows to recovered columns maximizing Σ|cos|, by enumeration."""
    r, k = C.shape
    best = max(itertools.permutations(range(k), r), key=lambda p: sum(abs(C[j, p[j]]) for j in range(r)))
    return best


def test_match_against_enumeration_with_missing_and_spurious_components():
    rng = np.random.default_rng(3)
    truth = ot.SymCP([1.0, 0.7, 0.4], unit(rng, 3, 8), 4)
    # recovered: component 2 and 0 of the truth (sign flipped: even order), slightly off; one junk direction
    vecs = np.stack([near(-truth.vectors[2], 1e-3, rng), unit(rng, 1, 8)[0], near(truth.vectors[0], 1e-3, rng)])
    rec = ot.SymCP([0.41, 0.3, 0.95], vecs, 4)
    m = ot.match(rec, truth, threshold=0.99)
    C = truth.vectors @ rec.vectors.T
    assert tuple(m.partners) == brute_force_pairs(C)
    assert m.partners[0] == 2 and m.partners[2] == 0
    # floor: the same d = 8 dot products: 8·eps = 2e-15; weight errors |0.41 - 0.4| / 0.4 carry eps / 0.025
    np.testing.assert_allclose(m.cosines, np.abs(C[[0, 1, 2], m.partners]), rtol=1e-12)
    assert m.missing == (1,) and m.spurious == (1,)
    np.testing.assert_allclose(m.weight_errors[[0, 2]], [0.05, 0.025], rtol=1e-9)
    assert m.min_cosine == m.cosines[1] < 0.99
    # fewer recovered than true: the unpaired true component has cosine 0 and no partner
    m2 = ot.match(ot.SymCP([1.0], truth.vectors[:1], 4), truth)
    assert m2.missing == (1, 2) and m2.spurious == () and m2.min_cosine == 0.0
    assert m2.partners.tolist() == [0, -1, -1] and np.isnan(m2.weight_errors[1])


def test_match_bad_input():
    t = ot.make_target(5, 2, 3)
    with pytest.raises(ot.OvertensorError, match="threshold must lie in"):
        ot.match(t, t, threshold=1.5)
    with pytest.raises(ot.OvertensorError, match="tensors differ in shape"):
        ot.match(t, ot.make_target(6, 2, 3))
    with pytest.raises(ot.OvertensorError, match="mass_fraction must lie in"):
        ot.recover(t, mass_fraction=1.0)


def test_recover_then_polish_converges_superlinearly_to_the_float64_floor():
    # order 4, d = 15, r = 3, m = 12 (docs/design.md section 5)
    target = ot.make_target(15, 3, 4, kind="gaussian", weights="geometric", seed=0)
    fit = ot.decompose(target, 12, seed=0, tol=1e-3)
    recovered = ot.recover(fit.model)
    assert recovered.rank == 3
    assert ot.match(recovered, target).min_cosine > 0.999
    polished = ot.polish(recovered, target)
    # merging costs accuracy (the polish starts above 1e-3); Levenberg–Marquardt then converges
    # superlinearly: the factor by which the error falls at least doubles every step (measured:
    # 62, 279, 1997, 2e4), down to 1e-10, far below the ~1e-8 that the difference-of-squares
    # formula can resolve
    errors = polished.history.relative_error
    assert errors[0] > 1e-3 and polished.relative_error <= 1e-10 and polished.info["stop"] == "tol"
    factors = errors[:-1] / errors[1:]
    assert len(factors) >= 3 and np.all(factors[1:] >= 2 * factors[:-1])
    dense = target.to_dense()
    assert np.linalg.norm(polished.model.to_dense() - dense) / np.linalg.norm(dense) <= 1e-10
    # polish is the "polish" solver started at the recovered components
    again = ot.decompose(target, recovered.rank, "polish", init=recovered)
    np.testing.assert_array_equal(again.model.weights, polished.model.weights)


def test_diagnostics_are_recorded_and_equal_brute_force_at_the_end():
    target = ot.make_target(20, 3, 3, weights=[1.0, 0.5, 0.25], seed=1)
    res = ot.decompose(target, 8, seed=7, max_steps=400, truth=target)
    h = res.history
    assert {"corr_0", "corr_2", "cone_mass_1", "movement"} <= set(h.names)
    W = res.params
    Wbar = W / np.linalg.norm(W, axis=1, keepdims=True)
    C = Wbar @ target.vectors.T
    # floors: the same d = 20 dot products and sums of <= 8 positive masses in another order:
    # 20·eps = 4e-15 relative; the movement (> 100) is a norm of differences that do not cancel
    np.testing.assert_allclose([h[f"corr_{j}"][-1] for j in range(3)], C.max(axis=0), rtol=1e-12)
    mass = np.sum(W**2, axis=1)
    np.testing.assert_allclose([h[f"cone_mass_{j}"][-1] for j in range(3)],
                               [mass[C[:, j] >= 0.9].sum() for j in range(3)], rtol=1e-12)
    np.testing.assert_allclose(h["movement"][-1], np.linalg.norm(W - _w0(8, 20, 7, target))
                               / np.linalg.norm(_w0(8, 20, 7, target)), rtol=1e-12)
    assert h["movement"][0] == 0.0 and h["movement"][-1] > 100  # far from W0: not lazy
    assert diagnostics.active_count(W, 1e-3 * target.norm(), 3) == h.active[-1]
    # measured: with this seed plain GD parks its components on a_0 and a_2; a_1 (weight 0.5)
    # is never found: its best correlation falls from 0.0121 to 0.0018, error stalls at 0.5 / ‖T*‖
    # (the same to 1e-12 on four kernel families and under a 1e-14 nudge of W0: a stall at a
    # saddle, not a chaotic path; cone masses 1 + 6e-7, 0, 0.25 + 4e-7; error 0.5 + 3e-12)
    np.testing.assert_allclose([h[f"cone_mass_{j}"][-1] for j in range(3)], [1.0, 0.0, 0.25], atol=1e-4)
    assert h["corr_1"][0] == pytest.approx(0.0121, abs=1e-4) and h["corr_1"][-1] < 2e-3
    np.testing.assert_allclose(res.relative_error, 0.5 / target.norm(), rtol=1e-4)
    # beyond-lazy re-draws the idle components and fits a_1; each cone then holds its true weight
    # (measured 3.4e-4 relative off at worst, at tol 1e-4: the same on every kernel family)
    bl = ot.decompose(target, 8, "beyond-lazy", seed=7, tol=1e-4, truth=target).history
    np.testing.assert_allclose([bl[f"cone_mass_{j}"][-1] for j in range(3)], target.weights, rtol=1e-3)
    assert min(bl[f"corr_{j}"][-1] for j in range(3)) > 0.999


def _w0(m: int, d: int, seed: int, target: ot.SymCP) -> np.ndarray:
    """gd's documented initialization: random directions of norm 1e-3 ‖T*‖^{1/2}."""
    G = run_rng(seed).standard_normal((m, d))
    return 1e-3 * np.sqrt(target.norm()) * G / np.linalg.norm(G, axis=1, keepdims=True)


def test_diagnostics_truth_must_fit_the_batch():
    t = ot.make_target(10, 2, 3)
    with pytest.raises(ot.OvertensorError, match="truth: got 2 tensors for a batch of 1 runs"):
        ot.decompose(t, 4, truth=[t, t])
    with pytest.raises(ot.OvertensorError, match="truth must be a SymCP of order 3 in dimension 10"):
        ot.decompose(t, 4, truth=ot.make_target(11, 2, 3))


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "overtensor.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_cli_recover_reports_the_match(tmp_path: Path):
    ot.save(tmp_path / "t.npz", ot.make_target(40, 5, 3, seed=3))
    out = cli("decompose", "t.npz", "--components", "30", "--method", "beyond-lazy", "--recover", "--json",
              "-o", "rec.npz", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["method"] == "beyond_lazy" and summary["converged"]
    assert summary["recovered_components"] == 5
    assert summary["min_cosine"] >= 0.999 and summary["missing"] == [] and summary["spurious"] == []
    rec = ot.load(tmp_path / "rec.npz")
    assert rec.rank == 5
    assert ot.match(rec, ot.make_target(40, 5, 3, seed=3)).min_cosine == pytest.approx(summary["min_cosine"])
    human = cli("decompose", "t.npz", "-m", "30", "--method", "beyond-lazy", "--recover", cwd=tmp_path)
    assert "recovered 5 components; against the target: min cosine" in human.stdout


@pytest.mark.parametrize("args,match", [
    (["--method", "gd", "--max-epochs", "3"], "unknown option 'max_epochs' for method 'gd'"),
    (["--method", "beyond-lazy", "--epoch-growth", "0.5"],
     "epoch_growth of method 'beyond_lazy' must be a finite number >= 1, got 0.5"),
])
def test_cli_bad_option_is_one_line(tmp_path: Path, args, match):
    import re

    ot.save(tmp_path / "t.npz", ot.make_target(10, 2, 3, seed=0))
    out = cli("decompose", "t.npz", "-m", "4", *args, cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(match, lines[0]), out.stderr
