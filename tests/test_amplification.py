"""E5's measurements (alignment time, mass phase, stalls, slope fits) and E8's noisy inputs,
against brute-force traces, an ODE solve, Monte Carlo and closed forms."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import overtensor as ot
from overtensor.experiments import runner
from overtensor.experiments.amplification import (
    fit_slope,
    predicted_alignment,
    predicted_mass_phase,
    stall_probability,
    trace_metrics,
    wilson,
)
from overtensor.experiments.spec import build_input, build_target, parse_spec


def outer_power(v: np.ndarray, k: int) -> np.ndarray:
    out = np.ones(())
    for _ in range(k):
        out = np.multiply.outer(out, v)
    return out


def brute_trace(W: np.ndarray, a: np.ndarray, order: int, eta: float, steps: int) -> tuple[list, list]:
    """Plain GD on ½‖Σ ‖w_i‖^{2-l} w_i^{⊗l} - a^{⊗l}‖² with dense tensors (design §3's gradient).

    Returns the best correlation with ``a`` (``|·|`` at even order) and the relative error, before each step.
    """
    T_star = outer_power(a, order)
    best, rel = [], []
    for _ in range(steps):
        n = np.linalg.norm(W, axis=1)
        U = W / n[:, None]
        T = sum(ni ** 2 * outer_power(u, order) for ni, u in zip(n, U))
        R = T - T_star
        c = U @ a
        best.append(float(np.max(np.abs(c) if order % 2 == 0 else c)))
        rel.append(float(np.linalg.norm(R) / np.linalg.norm(T_star)))
        grads = []
        for ni, u in zip(n, U):
            Ru = R
            for _ in range(order - 1):
                Ru = Ru @ u  # R(u^{⊗(l-1)}, ·)
            grads.append(ni * (order * Ru + (2 - order) * float(Ru @ u) * u))
        W = W - eta * np.array(grads)
    return best, rel


@pytest.mark.parametrize("order", [3, 4])
def test_alignment_step_and_mass_phase_equal_a_brute_force_trace(order):
    d, m, eta = 7, 3, 0.4
    target = ot.make_target(d, 1, order, seed=order)
    rng = np.random.default_rng(order)
    W0 = rng.standard_normal((m, d))
    W0 *= 1e-3 / np.linalg.norm(W0, axis=1, keepdims=True)
    result = ot.decompose(target, m, "gd", init=W0, step_size=eta, tol=1e-2, max_steps=3000, record_every=1,
                          truth=target)
    metrics = trace_metrics(result, target)
    best, rel = brute_trace(W0, target.vectors[0], order, eta, result.steps + 1)
    first = next(k for k, b in enumerate(best) if b >= 0.9)
    done = next(k for k, e in enumerate(rel) if e <= 1e-2)
    # the two trajectories agree to rounding (~1e-13 after a few hundred steps); make sure no
    # crossing lies that close to its level, so the first index is the same for both
    assert abs(best[first] - 0.9) > 1e-9 and abs(best[first - 1] - 0.9) > 1e-9
    assert abs(rel[done] - 1e-2) > 1e-9 and abs(rel[done - 1] - 1e-2) > 1e-9
    assert metrics["alignment_step"] == first and result.steps == done
    assert metrics["mass_phase_steps"] == done - first
    np.testing.assert_allclose(metrics["start_correlation"], best[0], rtol=1e-12)  # one d-term dot product
    assert metrics["target_weight"] == 1.0 and metrics["init_mass"] == pytest.approx(1e-6, rel=1e-12)


def test_prediction_is_the_leading_term_of_the_flow():
    """Integrate dx/dt = l c x^{l-1}(1 - x²) from x0 to 0.9: the closed form, whose leading term
    as x0 -> 0 is the prediction 1/(l(l-2) c x0^{l-2})."""
    from scipy.integrate import quad

    c = 2.0
    closed = {  # ∫ dx / (l c x^{l-1} (1 - x²)) from x0 to 0.9, by partial fractions
        3: lambda x0: (1 / x0 - 1 / 0.9 + math.atanh(0.9) - math.atanh(x0)) / (3 * c),
        4: lambda x0: (0.5 / x0**2 - 0.5 / 0.81 + math.log(0.9 / x0) - 0.5 * math.log(0.19)
                       + 0.5 * math.log(1 - x0**2)) / (4 * c),
    }
    for order in (3, 4):
        for x0 in (1e-2, 1e-3, 1e-4):
            t, _ = quad(lambda x, l=order: 1.0 / (l * c * x ** (l - 1) * (1 - x * x)), x0, 0.9, epsabs=0,
                        epsrel=1e-12, limit=200)
            np.testing.assert_allclose(t, closed[order](x0), rtol=1e-9)  # quad's own tolerance, with margin
            leading = float(predicted_alignment(x0, order, 1.0, c))  # η = 1: time in units of steps
            # the remainder relative to the leading term is O(x0^{l-2} log(1/x0)): < 2% from x0 = 1e-2
            assert abs(t / leading - 1) < 2e-2 * (x0 / 1e-2) ** (order - 2) * (1 + math.log(1e-2 / x0))
    assert predicted_alignment(-0.1, 3, 0.4, 1.0) == np.inf
    assert predicted_mass_phase(0.4, 1.0, 1e-6) == pytest.approx(math.log(1e6) / 1.6, rel=1e-15)


def test_stall_probability_by_monte_carlo():
    rng = np.random.default_rng(0)
    n, d = 20_000, 30
    a = np.eye(d)[0]
    for m in (1, 2, 3):
        G = rng.standard_normal((n, m, d))
        frac = float(np.mean(np.all(G @ a <= 0, axis=1)))
        # 4 binomial standard deviations: sqrt(p(1-p)/n) <= 0.0036
        assert abs(frac - stall_probability(m, 3)) <= 4 * math.sqrt(0.25 / n)
    assert stall_probability(2, 4) == 0.0


def test_wilson_is_the_closed_form():
    z = 1.959963984540054  # Φ^{-1}(0.975)
    for k, n in ((0, 10), (3, 10), (10, 10), (17, 64)):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        np.testing.assert_allclose(wilson(k, n), (centre - half, centre + half), atol=1e-12)
    assert wilson(0, 10)[1] > 0 and wilson(10, 10)[0] < 1


def test_fit_slope_is_the_least_squares_slope_of_the_medians_with_an_interval():
    rng = np.random.default_rng(1)
    dims = [100, 1000, 10_000, 100_000]
    samples = [3.0 * d ** 0.5 * rng.lognormal(0, 0.3, 40) for d in dims]
    fit = fit_slope(dims, samples, n_resamples=500)
    expected = np.polyfit(np.log(dims), np.log([np.median(s) for s in samples]), 1)[0]
    np.testing.assert_allclose(fit.slope, expected, rtol=1e-12)  # both least squares on 4 points
    assert fit.low < fit.slope < fit.high and fit.high - fit.low < 0.1 and fit.dims == tuple(dims)
    censored = samples[:3] + [np.r_[samples[3][:20], np.full(20, np.inf)]]  # half the seeds never aligned
    assert fit_slope(dims, censored, n_resamples=200).dims == tuple(dims[:3])


def test_noisy_input_and_metrics_against_the_clean_target():
    data = {"name": "n", "experiment": "e8", "record": {"history": False, "recovery": True}, "runs": [
        {"target": {"dim": 5, "rank": 2, "order": 3, "kind": "gaussian", "noise": [0.0, 0.1]},
         "method": "gd", "options": {"max_steps": 300}, "components": 2}]}
    spec = parse_spec(data)
    clean_run, noisy_run = spec.expand()
    target = build_target(noisy_run.config, noisy_run.seed)
    assert build_input(clean_run.config, clean_run.seed, target) is target
    noisy = build_input(noisy_run.config, noisy_run.seed, target)
    A = noisy.to_dense()
    # the noise has relative norm 0.1 (a ratio of two norms of 125 entries: ~125 eps) and is symmetric
    np.testing.assert_allclose(np.linalg.norm(A - target.to_dense()) / target.norm(), 0.1, rtol=1e-12)
    for p in itertools.permutations(range(3)):
        np.testing.assert_allclose(np.transpose(A, p), A, atol=1e-15)
    (record,) = runner.execute(runner.Task("n", noisy_run.config, (noisy_run.seed,), spec.record))
    fit, clean = record.relative_error, record.metrics["clean_relative_error"]
    # triangle inequality: | ‖M - T‖ - ‖T - T*‖ | <= ‖M - T*‖ <= ‖M - T‖ + ‖T - T*‖ (in units of ‖T*‖)
    ratio = np.linalg.norm(A) / target.norm()
    assert abs(fit * ratio - 0.1) - 1e-9 <= clean <= fit * ratio + 0.1 + 1e-9
    assert "recovered_error" in record.metrics


def test_noise_free_configs_keep_their_keys():
    """Adding ``target.noise`` must not re-key the runs of existing stores (they would all look new)."""
    import hashlib
    import json

    data = {"name": "k", "experiment": "x", "runs": [
        {"target": {"dim": 5, "rank": 1, "noise": [0.0, 0.1]}, "method": "gd", "components": 2}]}
    clean, noisy = (run.config for run in parse_spec(data).expand())
    dump = clean.model_dump(mode="json")
    del dump["target"]["noise"]  # what the dump was before the field existed
    old = hashlib.sha256(json.dumps(dump, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:20]
    assert clean.key == old and noisy.key != old
