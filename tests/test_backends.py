"""The gd path on other array libraries and dtypes, and batches that equal their single runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import EPS, residual_floor

import overtensor as ot
from overtensor.backend import get_backend, to_numpy
from overtensor.solvers.descent import CHECK_EVERY, DescentConfig, Recorder, descend
from overtensor.solvers.problem import make_problem
from overtensor.tensors.kernels import DenseOp, FactoredOp, ShiftedOp, map_arrays, power


def _targets():
    t = ot.make_target(12, 3, 3, kind="gaussian", seed=2)
    return {"factored": t, "dense": ot.DenseSymTensor(t.to_dense())}


def _terms(target: ot.SymCP | ot.DenseSymTensor, m: int) -> int:
    """First-order count of the summands of gd's ‖R‖² (see conftest.residual_floor): 2m + r + d,
    with a dense target's d^(l-1)-entry contraction in place of r."""
    d = target.dim if isinstance(target, ot.DenseSymTensor) else target.vectors.shape[1]
    inner = target.rank if isinstance(target, ot.SymCP) else d ** (target.order - 1)
    return 2 * m + inner + d


def _assert_same_run(a: ot.DecompositionResult, b: ot.DecompositionResult, rtol: float, terms: int) -> None:
    assert a.steps == b.steps and a.converged == b.converged
    np.testing.assert_allclose(a.params, b.params, rtol=rtol, atol=1e-12)
    # the error estimate is a difference of O(‖T*‖²) terms: equal to rounding of ‖T*‖², not of the
    # error: two estimates differ by <= 2·residual_floor(e, terms) (1e-10 covers the params' rtol)
    floor = residual_floor(min(a.relative_error, b.relative_error), terms)
    assert abs(a.relative_error - b.relative_error) <= max(1e-10, 2 * floor)
    # each loss carries terms·eps·‖T*‖², ‖T*‖² = 2·loss[0] (W0 is ~0): an absolute floor
    np.testing.assert_allclose(a.history.loss, b.history.loss, rtol=1e-6,
                               atol=2 * terms * EPS * 2 * a.history.loss[0])


@pytest.mark.parametrize("kind", ["factored", "dense"])
@pytest.mark.parametrize("parameterization", ["balanced", "plain"])
def test_array_api_strict_equals_numpy(kind, parameterization):
    target = _targets()[kind]
    options = dict(seed=3, max_steps=150, parameterization=parameterization, reg=1e-3,
                   init_scale=None if parameterization == "balanced" else 0.5)
    ref = ot.decompose(target, 8, **options)
    strict = ot.decompose(target, 8, backend="array_api_strict", **options)
    # array_api_strict wraps NumPy: the same calls (measured equal bit for bit on four kernel
    # families); the floors allow another summation order, which 150 steps amplify ~1e2x at most
    _assert_same_run(strict, ref, rtol=1e-12, terms=_terms(target, 8))
    assert strict.info["backend"] == "array_api_strict"


@pytest.mark.parametrize("method,options", [
    ("beyond_lazy", {"tol": 1e-3, "max_epochs": 3, "epoch_steps": 60}),
    ("lazy_gd", {"max_steps": 150, "alpha": 10.0}),
])
def test_every_gradient_method_runs_on_array_api_strict(method, options):
    target = _targets()["factored"]
    ref = ot.decompose(target, 8, method, seed=3, **options)
    strict = ot.decompose(target, 8, method, seed=3, backend="array_api_strict", **options)
    # the same floors as gd's comparison above (array_api_strict wraps NumPy)
    assert strict.info["backend"] == "array_api_strict" and strict.steps == ref.steps
    np.testing.assert_allclose(strict.params, ref.params, rtol=1e-12, atol=1e-12)
    terms = _terms(target, 8) if method == "beyond_lazy" else _terms(target, 16)  # lazy_gd: 2m terms
    floor = residual_floor(min(strict.relative_error, ref.relative_error), terms)
    assert abs(strict.relative_error - ref.relative_error) <= max(1e-10, 2 * floor)


GRADIENT_METHODS = [
    ("gd", {"max_steps": 150, "reg": 1e-3}),
    ("beyond_lazy", {"tol": 1e-3, "max_epochs": 3, "epoch_steps": 60}),
    ("lazy_gd", {"max_steps": 150, "alpha": 10.0}),
]


@pytest.mark.parametrize("method,options", GRADIENT_METHODS, ids=[m for m, _ in GRADIENT_METHODS])
def test_the_backend_is_the_problems(method, options):
    """backend/device/dtype configure the problem: a solver given a strict problem equals decompose's strict run."""
    import array_api_strict

    from overtensor.solvers import METHODS
    from overtensor.solvers.options import validate

    target = _targets()["factored"]
    problem = make_problem([target], 8, [3], backend="array_api_strict")
    assert problem.arrays.xp is array_api_strict and problem.backend == "array_api_strict"
    _, target_sq = problem.on()
    assert type(target_sq).__module__.startswith("array_api_strict")
    full = validate(method, options).model_dump(exclude={"backend", "device", "dtype"})
    (direct,) = METHODS[method](problem, **full)
    strict = ot.decompose(target, 8, method, seed=3, backend="array_api_strict", **options)
    assert direct.info["backend"] == "array_api_strict" and direct.steps == strict.steps
    np.testing.assert_array_equal(direct.params, strict.params)  # the same calls in the same order


def test_problem_refuses_a_missing_device_before_any_solver():
    with pytest.raises(ot.OvertensorError, match="backend 'numpy' runs on the CPU only, got device 'cuda'"):
        make_problem([_targets()["factored"]], 3, [0], device="cuda")
    with pytest.raises(ot.OvertensorError, match="unknown option 'backend' for method 'power'"):
        ot.decompose(_targets()["factored"], 3, "power", backend="numpy")  # NumPy-only methods take none


@pytest.mark.parametrize("method,options", GRADIENT_METHODS, ids=[m for m, _ in GRADIENT_METHODS])
def test_every_gradient_method_on_torch_equals_numpy(method, options):
    torch = pytest.importorskip("torch")
    target = _targets()["factored"]
    ref = ot.decompose(target, 8, method, seed=3, **options)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    run = ot.decompose(target, 8, method, seed=3, backend="torch", device=device, **options)
    assert run.info["backend"] == "torch" and run.steps == ref.steps
    # torch (and CUDA) sum in their own orders: ~terms·eps per step, which 150 steps of a
    # contracting descent keep near 1e-10 relative in the parameters
    np.testing.assert_allclose(run.params, ref.params, rtol=1e-9, atol=1e-10)
    terms = _terms(target, 16) if method == "lazy_gd" else _terms(target, 8)
    floor = residual_floor(min(run.relative_error, ref.relative_error), terms)
    assert abs(run.relative_error - ref.relative_error) <= max(1e-9, 2 * floor)


@pytest.mark.parametrize("kind", ["factored", "dense"])
def test_torch_cpu_equals_numpy(kind):
    pytest.importorskip("torch")
    target = _targets()[kind]
    ref = ot.decompose(target, 8, seed=3, max_steps=400)
    run = ot.decompose(target, 8, seed=3, max_steps=400, backend="torch", device="cpu")
    assert ref.converged  # the comparison covers a run that stops at its tolerance
    # torch sums in its own orders: per step ~terms·eps relative, a converging run contracts it
    _assert_same_run(run, ref, rtol=1e-10, terms=_terms(target, 8))
    batch = ot.decompose_batch(target, 8, seeds=[3, 4], max_steps=400, backend="torch")
    _assert_same_run(batch[0], ref, rtol=1e-10, terms=_terms(target, 8))


def test_float32_reports_the_float64_error_of_its_parameters():
    target = ot.make_target(30, 3, 3, seed=2)
    run = ot.decompose(target, 8, seed=3, dtype="float32", tol=1e-3)
    assert run.params.dtype == np.float64 and run.info["dtype"] == "float32"
    exact = run.model.distance(target) / target.norm()

    def floor(e: float) -> float:
        # both are float64 differences of squares: the estimate's 2m + r + d = 49 terms, the
        # distance's (m + r)² + d = 151; at e = 1.9e-4 that is 1e-6 relative, so rtol 1e-6 alone
        # sat at the floor (and failed under Haswell at e = 7e-6: 2e-6 relative)
        return residual_floor(e, 49) + residual_floor(e, 151)

    np.testing.assert_allclose(run.relative_error, exact, rtol=1e-6, atol=floor(exact))
    assert run.converged and exact <= 1e-3
    # the float32 iterates follow the float64 ones closely at this scale: both cross the tolerance
    # at step 386 under every kernel family (float32 rounding, 1e-7 relative, shifts the path far
    # less than one step's progress), so they stop at the same check, or one check apart
    ref = ot.decompose(target, 8, seed=3, tol=1e-3)
    assert abs(run.steps - ref.steps) <= CHECK_EVERY
    # Below its floor (sqrt(eps32) = 3.5e-4) the float32 estimate reads 0 and stops the loop; the
    # reported error stays honest. Where it stops is noise: steps 386-388 and errors 7e-6 to 1.9e-4
    # across kernel families. Robust: float32 GD cannot get below its gradient's rounding,
    # ~sqrt(m + r)·eps32 = 4e-7 relative (run 3000 steps at tol 0 it settles at 5.6e-7 under
    # SkylakeX and Haswell kernels), so an error <= tol = 1e-7 is out of reach.
    deep = ot.decompose(target, 8, seed=3, dtype="float32", tol=1e-7)
    assert not deep.converged and deep.relative_error > 1e-7
    assert deep.steps >= run.steps  # the same path, run on until its estimate read 0
    exact = deep.model.distance(target) / target.norm()
    np.testing.assert_allclose(deep.relative_error, exact, rtol=1e-6, atol=floor(exact))


def test_batch_with_runs_stopping_at_different_steps_equals_single_runs():
    # measured: seeds 0, 2 and 5 reach the tolerance after 26, 33 and 131 steps (the same under
    # SkylakeX and Haswell kernels; seed 0 and 5 also under four kernel families and a 1e-14 nudge
    # of W0) and stop at the next check (a multiple of CHECK_EVERY or of record_every = 10): each
    # at least 3 steps from a multiple of 10; asserted is what the test needs: three different stops
    target = ot.make_target(50, 5, 3, seed=0)
    seeds = [0, 2, 5]
    ticks: list[int] = []
    batch = ot.decompose_batch(target, 20, seeds=seeds, max_steps=1000, progress=ticks.append)
    singles = [ot.decompose(target, 20, seed=s, max_steps=1000) for s in seeds]
    steps = [r.steps for r in batch]
    assert len(set(steps)) == 3 and all(r.converged for r in batch)
    assert all(k % CHECK_EVERY == 0 or k % 10 == 0 for k in steps)
    assert sum(ticks) == max(steps)
    for b, s in zip(batch, singles):
        _assert_same_run(b, s, rtol=1e-10, terms=_terms(target, 20))
        np.testing.assert_array_equal(b.history.step, s.history.step)
        np.testing.assert_array_equal(b.history.active, s.history.active)


def test_descend_leaves_stopped_runs_alone_and_reports_their_error():
    target = ot.make_target(10, 2, 3, seed=0)
    problem = make_problem([target, target], 5, [0, 1])
    W = np.random.default_rng(0).standard_normal((2, 5, 10)) * 0.1
    config = DescentConfig(0.1, 0.0, 0.0, 7, 3)
    out = descend(W, problem.op, problem.target_sq, config, Recorder(2, 0.0), running=np.array([True, False]))
    np.testing.assert_array_equal(out.W[1], W[1])
    assert list(out.steps) == [7, 0]
    R = ot.SymCP(np.sum(W[1] ** 2, axis=1), W[1] / np.linalg.norm(W[1], axis=1, keepdims=True), 3) - target
    # floor: at e ~ 1 (W is ~0.1: the model is 1e-2 of T*) both differences of squares carry
    # ~(m + r)²·eps = 1e-14 relative; rtol 1e-8 is far above
    np.testing.assert_allclose(out.relative_error[1], R.norm() / target.norm(), rtol=1e-8)
    assert not np.array_equal(out.W[0], W[0])


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_power_is_the_elementwise_power(k):
    G = np.random.default_rng(k).standard_normal((2, 4, 4))
    # floor: <= 3 multiplications (or squarings) per entry: 3·eps = 7e-16 relative
    np.testing.assert_allclose(power(G.copy(), k), G**k, rtol=1e-14)


def test_map_arrays_moves_every_array_field():
    strict = get_backend("array_api_strict", dtype="float32")
    op = map_arrays(FactoredOp(np.ones(3), np.eye(3), 3), strict.asarray)
    assert op.order == 3 and op.weights.dtype == strict.xp.float32
    np.testing.assert_array_equal(to_numpy(op.vectors), np.eye(3))


def test_map_arrays_reaches_nested_operators():
    rng = np.random.default_rng(0)
    base = DenseOp(rng.standard_normal((3, 4, 4, 4)), 3)
    shift = FactoredOp(rng.standard_normal((3, 2)), rng.standard_normal((3, 2, 4)), 3)
    op = ShiftedOp(base, rng.standard_normal(3), shift)
    X = rng.standard_normal((3, 5, 4))
    rows = np.array([2, 0])
    sub = map_arrays(op, lambda a: a[rows])
    # floor: the same sums over a smaller batch, which BLAS may block differently: per entry
    # k·eps·Σ|products|, k = d^(l-1) + rank = 18, bounded by the same operator on absolute values
    # (an entry that cancels to ~0 keeps that absolute error)
    absop = ShiftedOp(DenseOp(np.abs(base.array), 3), np.abs(op.scale), FactoredOp(
        np.abs(shift.weights), np.abs(shift.vectors), 3))
    bound = absop.contract(np.abs(X))[rows]
    np.testing.assert_allclose(sub.contract(X[rows]), op.contract(X)[rows], rtol=1e-13,
                               atol=18 * EPS * bound.max())
    # ‖cT + S‖² = c²‖T‖² + 2c<T, S> + ‖S‖² may cancel: k = d^l + rank² + rank·d = 76 terms, bounded
    # by the absolute operator's norm
    np.testing.assert_allclose(sub.norm_sq(), op.norm_sq()[rows], rtol=1e-13,
                               atol=76 * EPS * absop.norm_sq()[rows].max())


@pytest.mark.parametrize(
    "options,match",
    [
        ({"backend": "jax2"}, "backend of method 'gd' must be one of 'numpy', 'torch', 'array_api_strict', got 'jax2'"),
        ({"dtype": "float16"}, "dtype of method 'gd' must be one of 'float64', 'float32', got 'float16'"),
        ({"device": "cuda"}, "backend 'numpy' runs on the CPU only, got device 'cuda'"),
    ],
)
def test_bad_backend_options(options, match):
    with pytest.raises(ot.OvertensorError, match=match):
        ot.decompose(ot.make_target(5, 2, 3), 3, **options)


def test_unavailable_torch_device_is_one_line_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ot.OvertensorError, match="device 'cuda' is not available to torch"):
        ot.decompose(ot.make_target(5, 2, 3), 3, backend="torch", device="cuda")


def test_cli_backend_and_dtype(tmp_path: Path):
    ot.save(tmp_path / "t.npz", ot.make_target(20, 2, 3, seed=1))
    cmd = [sys.executable, "-m", "overtensor.cli", "decompose", "t.npz", "-m", "6", "--json"]
    out = subprocess.run(cmd + ["--backend", "array_api_strict", "--dtype", "float32", "--tol", "1e-3"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"backend": "array_api_strict"' in out.stdout and '"dtype": "float32"' in out.stdout
    bad = subprocess.run(cmd + ["--device", "cuda"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.strip() == (
        "Error: backend 'numpy' runs on the CPU only, got device 'cuda'")
