"""Baselines: the tensor power method with deflation, CP-ALS (TensorLy), and their CLI."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import dense_from, residual_floor

import overtensor as ot
from overtensor.solvers.als import polarize


def distance_floor(model: ot.SymCP, target: ot.SymCP, e: float) -> float:
    """residual_floor of ``model.distance(target) / ‖T*‖``: (rank + r)² Gram terms of d products,
    scaled by how far the model's parts cancel (Σ|Gram terms| / ‖T*‖², >= 1)."""
    V = np.concatenate([model.vectors, target.vectors])
    w = np.concatenate([model.weights, target.weights])
    scale = np.sum(np.abs(np.outer(w, w) * (V @ V.T) ** model.order)) / target.norm() ** 2
    return residual_floor(e, len(w) ** 2 + V.shape[1], scale=max(scale, 1.0))


def match_components(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """For each true vector, the index of the found vector with the largest |cos|."""
    return np.argmax(np.abs(truth @ found.T), axis=1)


@pytest.mark.parametrize("order", [3, 4])
def test_power_recovers_orthonormal_targets(order):
    target = ot.make_target(20, 5, order, weights="geometric", spread=10.0, seed=order)
    result = ot.decompose(target, 5, method="power", seed=1)
    idx = match_components(result.model.vectors, target.vectors)
    assert sorted(idx) == list(range(5))
    # atol 1e-8 below: not rounding but convergence; each vector stops once a step moves it
    # <= power_tol = 1e-10, and on an orthonormal target the iteration converges superlinearly
    # (measured weights exact to 4e-16 on four kernel families)
    signs = np.sign(np.sum(result.model.vectors[idx] * target.vectors, axis=1))
    np.testing.assert_allclose(result.model.vectors[idx] * signs[:, None], target.vectors, atol=1e-8)
    np.testing.assert_allclose(result.model.weights[idx] * signs**order, target.weights, atol=1e-8)
    # deflation finds the largest weight first
    np.testing.assert_allclose(result.model.weights, target.weights, atol=1e-8)
    dense_error = np.linalg.norm(target.to_dense() - dense_from(result.model.weights, result.model.vectors, order))
    assert dense_error <= 1e-8 * target.norm()
    # the reported error is a difference of squares: a zero residual reads up to sqrt(k·eps),
    # k = 2r + r + d = 35: 8.8e-8 (measured 0 and 1.2e-8 across kernel families)
    assert result.relative_error <= 1e-7 and result.converged
    # floor: e² is read off with k·eps = 35·eps = 8e-15 absolute
    np.testing.assert_allclose(result.history.relative_error[:-1] ** 2,
                               np.cumsum(target.weights[::-1] ** 2)[::-1][1:] / target.norm() ** 2, atol=1e-12)


def test_power_on_a_dense_target_matches_the_factored_run():
    target = ot.make_target(12, 3, 3, weights=[3.0, 2.0, 1.0], seed=5)
    factored = ot.decompose(target, 3, method="power", seed=2)
    dense = ot.decompose(ot.DenseSymTensor(target.to_dense()), 3, method="power", seed=2)
    # convergence, not rounding (power_tol = 1e-10; measured 2e-16 apart on four kernel families)
    np.testing.assert_allclose(dense.model.weights, [3.0, 2.0, 1.0], atol=1e-8)
    np.testing.assert_allclose(dense.model.vectors, factored.model.vectors, atol=1e-8)
    # a dense target's residual sums d^l = 1728 products: a zero residual reads up to
    # sqrt(1728·eps) = 6.2e-7 (measured 0 on four kernel families); the direct dense error is exact
    assert dense.relative_error <= residual_floor(0.0, 12**3)
    direct = np.linalg.norm(target.to_dense() - dense_from(dense.model.weights, dense.model.vectors, 3))
    assert direct <= 1e-8 * target.norm()


def test_power_error_is_the_true_distance_on_a_non_orthogonal_target():
    target = ot.make_target(15, 4, 3, kind="gaussian", seed=1)
    result = ot.decompose(target, 4, method="power", seed=0, n_starts=5)
    brute = np.linalg.norm(target.to_dense() - dense_from(result.model.weights, result.model.vectors, 3))
    # floor: at e = 0.139 the estimate's difference of squares is good to ~(8² + d)·eps / e² = 1e-12
    np.testing.assert_allclose(result.relative_error, brute / target.norm(), rtol=1e-8)
    assert result.relative_error > 1e-3  # greedy deflation is not exact off orthogonality
    batch = ot.decompose_batch(target, 4, method="power", seeds=[0, 1], n_starts=5)
    # the same iterations in a batch (measured equal bit for bit); 1e-12 would allow another
    # summation order (d·eps per step, contracted by the converging iteration)
    np.testing.assert_allclose(batch[0].model.vectors, result.model.vectors, atol=1e-12)
    assert batch[0].steps == result.steps


def sym(A: np.ndarray) -> np.ndarray:
    perms = list(itertools.permutations(range(A.ndim)))
    return sum(np.transpose(A, p) for p in perms) / len(perms)


def test_power_iterations_match_a_plain_loop_start_by_start():
    from overtensor.solvers.problem import make_problem, power_iterations

    # run 0 converges (orthonormal), run 1 keeps moving (generic); one start of run 0 is e3, where
    # T(x, x, ·) = 0: a fixed point that must stay put and stop at once
    targets = [ot.SymCP([2.0, 1.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], 3),
               ot.SymCP([1.0, -0.7], [[0.6, 0.8, 0.0], [0.0, 0.6, 0.8]], 3)]
    dense = [ot.DenseSymTensor(t.to_dense()) for t in targets]
    X0 = np.random.default_rng(0).standard_normal((2, 3, 3))
    X0[0, 2] = [0.0, 0.0, 1.0]
    X0 /= np.linalg.norm(X0, axis=-1, keepdims=True)
    # tol > 0: with tol = 0 the stop is where rounding makes a change exactly 0, which depends on the BLAS
    for tol in (1e-6, 1e-9):
        X, iterations = power_iterations(make_problem(dense, 1, [0, 1]).op, X0, 25, tol)
        for b, t in enumerate(dense):
            most = 0
            for s in range(3):  # the plain loop: x <- T(x, x, ·)/‖·‖ until it moves by <= tol (up to sign)
                x, k = X0[b, s], 0
                while k < 25:
                    y = np.einsum("ijk,j,k->i", t.array, x, x)
                    y = y / np.linalg.norm(y) if np.linalg.norm(y) > 0 else x
                    moved = min(np.linalg.norm(y - x), np.linalg.norm(y + x))
                    x, k = y, k + 1
                    if moved <= tol:
                        break
                most = max(most, k)
                # einsum against BLAS: each iterate rounds by ~d eps, compounded over <= 25 iterations
                np.testing.assert_allclose(X[b, s], x, atol=1e-12)
            assert iterations[b] == most
        assert iterations[0] < iterations[1]  # run 0 stops while run 1 moves on: both branches of the loop


@pytest.mark.parametrize("order", [2, 3, 4])
def test_polarization_writes_the_symmetrized_cp_tensor(order):
    rng = np.random.default_rng(order)
    weights = rng.standard_normal(2)
    factors = [rng.standard_normal((4, 2)) for _ in range(order)]
    cp = np.zeros((4,) * order)
    for k in range(2):
        outer = factors[0][:, k]
        for A in factors[1:]:
            outer = np.multiply.outer(outer, A[:, k])
        cp += weights[k] * outer
    model = polarize(weights, factors)
    assert model.rank == 2 * 2 ** (order - 1)
    # floor: 2^(l-1) <= 8 polarization terms per CP component, of size up to 7.4 here (|weight|
    # times max|vector entry|^l), that cancel to the symmetrized product: 16·eps·7.4 = 2.6e-14
    np.testing.assert_allclose(model.to_dense(), sym(cp), atol=1e-12)


def test_als_error_against_tensorly_output():
    from tensorly import cp_to_tensor
    from tensorly.decomposition import parafac

    target = ot.make_target(8, 3, 3, kind="gaussian", seed=2)
    dense = ot.DenseSymTensor(target.to_dense())
    result = ot.decompose(dense, 2, method="als", seed=3)
    # the same TensorLy call, errors recomputed from its output by einsum
    cp = parafac(dense.array, 2, n_iter_max=500, init="random", tol=1e-10, random_state=3, normalize_factors=True)
    w, (A, B, C) = np.asarray(cp.weights), cp.factors
    rec = np.einsum("r,ir,jr,kr->ijk", w, A, B, C)
    # floor: a rank-2 sum of triple products in two orders, factor entries <= 1.2: 8·eps·1.7 = 3e-15
    np.testing.assert_allclose(rec, cp_to_tensor(cp), atol=1e-12)
    norm = np.linalg.norm(dense.array)
    # floor: the same TensorLy run (deterministic in one process); the errors, > 0.05, are norms of
    # d^l = 512 differences: 512·eps = 1e-13 relative, or (k·eps) / e² = 1e-12 through a difference
    # of squares
    np.testing.assert_allclose(result.info["cp_error"], np.linalg.norm(dense.array - rec) / norm, rtol=1e-10)
    np.testing.assert_allclose(result.relative_error, np.linalg.norm(dense.array - sym(rec)) / norm, rtol=1e-10)
    assert result.relative_error <= result.info["cp_error"]  # symmetrizing is a projection
    assert result.relative_error > 0.05  # rank 2 cannot fit rank 3
    # params (weights folded into the first factor) rebuild the CP tensor; the model is its symmetrization
    P = result.params
    # floor: weights folded into a factor and unfolded, polarized into 8 terms each; factor entries
    # <= 1.2 here: ~16·eps·1.2^3 = 6e-15; 1e-10 is loose, kept
    np.testing.assert_allclose(np.einsum("ri,rj,rk->ijk", *P), rec, atol=1e-10)
    np.testing.assert_allclose(result.model.to_dense(), sym(rec), atol=1e-10)
    assert result.steps == len(result.history) - 1


def test_als_fits_a_low_rank_target_and_densifies_factored_ones():
    # measured on this target: seeds 0-5 reach 8e-12, 8e-10, 1e-9, 0.58 (stuck), 3e-10, 3e-9;
    # seed 0 ends at 7.6e-12 to 5.9e-10 depending on the kernel family: ALS's last iterates are
    # rounding-driven, so only "converged below 1e-6" is asserted
    target = ot.make_target(10, 3, 3, kind="gaussian", seed=3)
    result = ot.decompose(target, 3, method="als", seed=0)
    assert result.relative_error <= 1e-6 and result.converged
    # SymCP.distance of the rank-12 polarized model reads a ~0 residual as up to sqrt(k·eps·scale),
    # k = 15² + d: 5.2e-7 here (measured 0 and 2.3e-8): the old atol 1e-7 sat below that floor;
    # ALS's own error is a direct dense norm (floor d^l·eps = 2e-13)
    e = result.relative_error
    np.testing.assert_allclose(result.model.distance(target) / target.norm(), e,
                               atol=distance_floor(result.model, target, e))
    with pytest.raises(ot.OvertensorError, match=r"als needs a dense target: .* keep it factored"):
        ot.decompose(ot.make_target(200, 2, 4, seed=0), 2, method="als")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "overtensor.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    ot.save(tmp / "t.npz", ot.make_target(8, 2, 3, weights=[2.0, 1.0], seed=0))
    return tmp


CLI = [
    (["--method", "lazy", "-m", "30", "--solver", "cg", "--cg-tol", "1e-12"], lambda s: s["relative_error"] <= 1e-6
     and s["cg_converged"] and s["m_over_threshold"] > 1),
    (["--method", "lazy-gd", "-m", "5", "--alpha", "10", "--max-steps", "50"],
     lambda s: s["steps"] == 50 and 0 < s["movement"] < 0.1),
    (["--method", "power", "-m", "2", "--n-starts", "3", "--max-iter", "50", "--power-tol", "1e-12"],
     lambda s: s["relative_error"] <= 1e-6 and s["n_starts"] == 3),
    (["--method", "als", "-m", "2", "--als-tol", "1e-12", "--als-init", "svd"],
     lambda s: s["relative_error"] <= 1e-6 and s["als_init"] == "svd"),
]


@pytest.mark.parametrize("args,check", CLI, ids=[a[1] for a, _ in CLI])
def test_cli_runs_each_method(cli_dir: Path, args, check):
    out = run("decompose", "t.npz", *args, "--json", "-o", f"{args[1]}.npz", cwd=cli_dir)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["method"] == args[1].replace("-", "_") and check(summary), summary
    model = ot.load(cli_dir / f"{args[1]}.npz")
    target = ot.load(cli_dir / "t.npz")
    # the summary's error and SymCP.distance agree to their floors at e ~ 0: for the lazy model
    # (120 tangent terms with cancelling parts) sqrt((122² + d)·eps·scale) = 1.5e-5 exceeds 1e-6
    # (measured 2.7e-8); the lazy estimate itself cancels m·d = 240 terms
    e = summary["relative_error"]
    atol = max(1e-6, distance_floor(model, target, e) + residual_floor(e, 30 * 8))
    np.testing.assert_allclose(model.distance(target) / target.norm(), e, atol=atol)


BAD = [
    (["--method", "power", "--alpha", "3"], "unknown option 'alpha' for method 'power'"),
    (["--method", "lazy", "--n-starts", "3"], "unknown option 'n_starts' for method 'lazy'"),
    (["--method", "lazy", "--cg-tol", "2"], r"cg_tol of method 'lazy' must be a finite number > 0 and < 1, got 2.0"),
    (["--method", "lazy-gd", "--alpha", "0"], "alpha of method 'lazy_gd' must be a finite number > 0, got 0.0"),
    (["--method", "power", "--n-starts", "0"], "n_starts of method 'power' must be an integer >= 1, got 0"),
    (["--method", "als", "--max-iter", "0"], "max_iter of method 'als' must be an integer >= 1, got 0"),
]


@pytest.mark.parametrize("args,match", BAD, ids=[f"{a[1]}-{i}" for i, (a, _) in enumerate(BAD)])
def test_cli_bad_option_is_one_line_error(cli_dir: Path, args, match):
    import re

    before = set(p.name for p in cli_dir.iterdir())
    out = run("decompose", "t.npz", *(["-m", "3"] if "-m" not in args else []), *args, "-o", "bad.npz", cwd=cli_dir)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert re.search(match, lines[0]), lines[0]
    assert set(p.name for p in cli_dir.iterdir()) == before
