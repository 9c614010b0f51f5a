"""The moment estimators: planted mixtures and sources recovered, scikit-learn conventions, bad input.

Accuracy bounds are sampling-error bounds: moment estimates (and every quantity
smooth in them: whitening, the decomposition's components) err by ``C / sqrt(n)``.
Each constant ``C`` is 2.3x to 5x the error measured on these fixed data at both
``n`` (the measured values are in the comments), so the bounds do not depend on the CPU: BLAS rounding
(~1e-15 relative) moves the descent path far less than the sampling error.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from conftest import cli_runner
from scipy.optimize import linear_sum_assignment
from scipy.stats import multivariate_normal
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

import overtensor as ot
from overtensor import OvertensorError, models
from overtensor.cli import main
from overtensor.models import MomentICA, SphericalGMM, amari_distance


def planted_gmm(n: int, seed: int, d: int = 10, k: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x ~ Σ_j w_j N(μ_j, I)``: means sharing an offset (pairwise cosines up to ~0.7), weights in ``[1, 3]/Σ``."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=d)
    mu = rng.normal(size=(k, d)) * 3 / np.sqrt(d) + 2 * base / np.linalg.norm(base)
    w = rng.uniform(1, 3, size=k)
    w /= w.sum()
    z = rng.choice(k, size=n, p=w)
    return mu[z] + rng.normal(size=(n, d)), mu, w


def matched_errors(means: np.ndarray, weights: np.ndarray, mu: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """``max_j ‖μ̂_j - μ_j‖ / ‖μ_j‖`` and ``max_j |ŵ_j - w_j|`` after Hungarian matching of the means."""
    C = np.linalg.norm(mu[:, None] - means[None], axis=2) / np.linalg.norm(mu, axis=1)[:, None]
    r, c = linear_sum_assignment(C)
    return float(C[r, c].max()), float(np.abs(weights[c] - w[r]).max())


def planted_ica(n: int, seed: int, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """``x = A s + b``: ``d/2`` uniform sources (kurtosis -1.2), ``d/2`` Laplace (+3), unit variance."""
    rng = np.random.default_rng(seed)
    S = np.concatenate([rng.uniform(-np.sqrt(3), np.sqrt(3), size=(n, d // 2)),
                        rng.laplace(scale=1 / np.sqrt(2), size=(n, d - d // 2))], axis=1)
    A = rng.normal(size=(d, d))
    return S @ A.T + rng.normal(size=d), A


# -- the spherical mixture ------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_gmm_recovers_planted_mixture_with_error_shrinking_in_n(seed: int) -> None:
    errors = []
    for n in (20_000, 200_000):
        X, mu, w = planted_gmm(n, seed)
        model = SphericalGMM(seed=0).fit(X)
        assert model.n_components_ == 4 and model.means_.shape == (4, 10) and model.weights_.shape == (4,)
        mean_err, weight_err = matched_errors(model.means_, model.weights_, mu, w)
        # measured (seed 0, 1): mean 0.054, 0.035 at 2e4 and 0.023, 0.009 at 2e5 (<= 10.4/sqrt(n)); weights
        # 0.016, 0.0095 and 0.0035, 0.0019 (<= 2.3/sqrt(n))
        assert mean_err < 25 / np.sqrt(n)
        assert weight_err < 8 / np.sqrt(n)
        # σ² from the mean of d - k = 6 eigenvalues: standard error sqrt(2 / (6 n)) ≈ 0.004 at 2e4, plus the
        # spread of a covariance spectrum's bulk, (d/n)^{1/2} ≈ 0.02 at most
        assert abs(model.variance_ - 1.0) < 0.05
        np.testing.assert_allclose(model.weights_.sum(), 1.0, rtol=1e-12)  # a normalized sum of 4 terms
        errors.append(mean_err)
    assert errors[1] < errors[0] / 2  # sqrt(10) = 3.2 expected; 2 leaves room for the sampling noise of both


def test_gmm_integer_components_keeps_that_many() -> None:
    X, mu, w = planted_gmm(50_000, 1)
    four = SphericalGMM(4).fit(X)
    assert four.n_components_ == 4 and four.candidates_ == 4
    assert matched_errors(four.means_, four.weights_, mu, w)[0] < 25 / np.sqrt(X.shape[0])
    two = SphericalGMM(2).fit(X)
    assert two.n_components_ == 2 and two.means_.shape == (2, 10)


def test_gmm_single_gaussian_is_one_component() -> None:
    rng = np.random.default_rng(0)
    mu = np.array([2.0, 1.0, 0.0, 0.0, 0.0])
    X = mu + rng.normal(size=(20_000, 5))
    model = SphericalGMM().fit(X)
    assert model.n_components_ == 1 and model.weights_.tolist() == [1.0]
    # measured 0.0059 = 0.83 / sqrt(n); the sample mean alone errs by sqrt(d / n) / ‖μ‖ = 0.0071
    assert np.linalg.norm(model.means_[0] - mu) / np.linalg.norm(mu) < 25 / np.sqrt(X.shape[0])


def test_gmm_density_matches_scipy() -> None:
    X, _, _ = planted_gmm(5_000, 0)
    model = SphericalGMM().fit(X)
    Y = X[:50]
    joint = np.stack([np.log(wj) + multivariate_normal(mj, model.variance_ * np.eye(10)).logpdf(Y)
                      for wj, mj in zip(model.weights_, model.means_)], axis=1)
    expected = np.log(np.sum(np.exp(joint), axis=1))
    # log-densities of size ~20 from two formulas (expanded ‖x - μ‖² vs scipy's Cholesky): 1e-10 absolute
    np.testing.assert_allclose(model.score_samples(Y), expected, atol=1e-10)
    assert model.score(Y) == pytest.approx(expected.mean(), abs=1e-10)
    proba = model.predict_proba(Y)
    np.testing.assert_allclose(proba, np.exp(joint - expected[:, None]), atol=1e-10)
    np.testing.assert_array_equal(model.predict(Y), np.argmax(joint, axis=1))


def test_gmm_reads_memmap_and_path_like_memory(tmp_path) -> None:
    X, _, _ = planted_gmm(20_000, 1)
    path = tmp_path / "x.npy"
    np.save(path, X)
    ref = SphericalGMM().fit(X)
    for source in (np.load(path, mmap_mode="r"), str(path)):
        got = SphericalGMM().fit(source)
        # the same chunks summed in the same order: equal to rounding of identical operations
        np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-10, atol=1e-12)


def test_em_step_matches_scipy_responsibilities() -> None:
    from overtensor.models.gmm import em_step

    X, mu, _ = planted_gmm(3_000, 2)
    means, weights, s2 = mu + 0.3, np.array([0.1, 0.2, 0.3, 0.4]), 1.3  # a start away from the optimum
    logp = np.stack([np.log(wj) + multivariate_normal(mj, s2 * np.eye(10)).logpdf(X) for wj, mj in zip(weights, means)],
                    axis=1)
    r = np.exp(logp - np.log(np.sum(np.exp(logp), axis=1, keepdims=True)))
    N = r.sum(axis=0)
    expected_means = r.T @ X / N[:, None]
    expected_s2 = np.sum(r * np.sum((X[:, None, :] - expected_means[None]) ** 2, axis=2)) / X.size
    got = em_step(ot.moment_tensor(X, 3, chunk_size=700).samples, means, weights, s2)  # 5 chunks
    # sums of 3000 terms of size ~10 in two orders and ‖x - μ‖² expanded vs direct: ~1e-12 relative
    np.testing.assert_allclose(got[0], expected_means, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(got[1], N / X.shape[0], rtol=1e-9)
    assert got[2] == pytest.approx(expected_s2, rel=1e-9)


def test_gmm_em_steps_never_lower_the_likelihood() -> None:
    X, mu, w = planted_gmm(20_000, 0)
    scores = [SphericalGMM(seed=0, em_steps=s).fit(X).score(X) for s in (0, 1, 2, 5)]
    # EM's monotonicity (Dempster, Laird, Rubin 1977); slack: a mean of 2e4 log-densities of size ~15, ~1e-12
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(scores))
    model = SphericalGMM(seed=0, em_steps=5).fit(X)
    mean_err = matched_errors(model.means_, model.weights_, mu, w)[0]
    moments_only = matched_errors(*(lambda m: (m.means_, m.weights_))(SphericalGMM(seed=0).fit(X)), mu, w)[0]
    assert mean_err < moments_only  # measured 0.029 against 0.058 on these data (seed 0)


@pytest.mark.slow
def test_gmm_raw_moment() -> None:
    # one pass over the data per descent and polish step: ~5 s at n = 5e4. (On d = 5, k = 2 the raw route
    # splits one mean in two; docs/models.md.)
    X, mu, w = planted_gmm(50_000, 1)
    model = SphericalGMM(whiten=False).fit(X)
    assert model.n_components_ == 4
    mean_err, weight_err = matched_errors(model.means_, model.weights_, mu, w)
    assert mean_err < 40 / np.sqrt(X.shape[0]) and weight_err < 8 / np.sqrt(X.shape[0])  # measured 0.018, 0.006


# -- ICA -----------------------------------------------------------------------------
def test_amari_distance_zero_for_scaled_permutation_and_known_value() -> None:
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 5))
    P = np.eye(5)[[2, 0, 4, 1, 3]] * np.array([1.0, -2.0, 0.5, 3.0, -1.0])[:, None]
    W = P @ np.linalg.inv(A)
    assert amari_distance(W, A) == pytest.approx(0.0, abs=1e-12)  # W A = P up to an inverse's rounding
    # P = [[1, a], [0, 1]]: rows a + 0, columns 0 + a, over 2 k (k - 1) = 4
    assert amari_distance(np.array([[1.0, 0.3], [0.0, 1.0]]), np.eye(2)) == pytest.approx(0.15, abs=1e-15)
    assert amari_distance(np.ones((3, 3)), np.eye(3)) == pytest.approx(1.0, abs=1e-15)  # the maximum


def test_ica_recovers_sources_of_both_kurtosis_signs() -> None:
    distances = []
    for n in (20_000, 200_000):
        X, A = planted_ica(n, 0)
        model = MomentICA(seed=0).fit(X)
        assert model.components_.shape == (6, 6) and model.mixing_.shape == (6, 6)
        assert model.n_components_ == 6
        distances.append(amari_distance(model.components_, A))
        assert distances[-1] < 3.0 / np.sqrt(n)  # measured 0.0065 at 2e4, 0.0026 at 2e5: <= 1.2 / sqrt(n)
        kurt = np.sort(model.kurtosis_)
        # 3 uniform sources (-1.2; sample std of the kurtosis sqrt(E s^8 / n) = 3/sqrt(n)) and 3 Laplace (+3;
        # std sqrt(2520 / n)): bounds of 4 standard errors plus 0.05 of whitening error
        np.testing.assert_allclose(kurt[:3], -1.2, atol=4 * 3 / np.sqrt(n) + 0.05)
        np.testing.assert_allclose(kurt[3:], 3.0, atol=4 * np.sqrt(2520 / n) + 0.05)
    assert distances[1] < distances[0]
    S = model.transform(X[:100])
    np.testing.assert_allclose(model.inverse_transform(S), X[:100], atol=1e-9)  # x = mixing s + mean, square


def test_ica_fewer_components() -> None:
    X, _ = planted_ica(20_000, 1)
    model = MomentICA(3).fit(X)
    assert model.components_.shape == (3, 6) and model.mixing_.shape == (6, 3) and model.kurtosis_.shape == (3,)
    assert model.transform(X[:7]).shape == (7, 3)


# -- scikit-learn conventions and bad input -------------------------------------------
@parametrize_with_checks([SphericalGMM(), MomentICA()])
def test_sklearn_estimator_checks(estimator, check) -> None:
    # every check applies and passes; check_array_api_input skips itself (SCIPY_ARRAY_API unset)
    check(estimator)


@pytest.mark.parametrize("make", [SphericalGMM, MomentICA])
def test_not_fitted_and_wrong_features(make) -> None:
    X, _, _ = planted_gmm(2_000, 0)
    est = make()
    with pytest.raises(NotFittedError):
        est.predict(X) if make is SphericalGMM else est.transform(X)
    assert est.fit(X) is est
    with pytest.raises(OvertensorError, match=r"^X has 9 features, but \w+ is expecting 10 features as input$"):
        est.predict(X[:, :9]) if make is SphericalGMM else est.transform(X[:, :9])
    assert est.get_params()["seed"] == 0 and est.set_params(seed=3).seed == 3


@pytest.mark.parametrize(("make", "X", "message"), [
    (lambda: SphericalGMM(0), None, "n_components must be >= 1, got 0"),
    (lambda: SphericalGMM(10), None, "n_components must be < d = 10 for this model, got 10"),
    (lambda: SphericalGMM("many"), None, "n_components must be 'auto' or an integer, got 'many'"),
    (lambda: SphericalGMM(2.5), None, "n_components must be 'auto' or an integer, got 2.5"),
    (lambda: MomentICA(0), None, "n_components must be >= 1, got 0"),
    (lambda: MomentICA(11), None, "n_components must be <= d = 10 for this model, got 11"),
    (lambda: SphericalGMM(seed=-1), None, "seed must be an integer >= 0, got -1"),
    (lambda: SphericalGMM(em_steps=-1), None, "em_steps must be an integer >= 0, got -1"),
    (SphericalGMM, np.full((5, 3), np.nan), "samples have 15 non-finite (NaN or Inf) entries"),
    (MomentICA, np.ones(5), "samples must be a 2-d (n, d) array, got shape (5,)"),
    (SphericalGMM, np.ones((5, 3), dtype=complex), "Complex data not supported: samples have dtype complex128"),
    (SphericalGMM, np.array([["a", "b"], ["c", "d"]]), "samples must be float or integer numbers, got dtype <U1"),
    (SphericalGMM, np.ones((1, 3)), "samples must hold at least 2 rows, got n_samples = 1"),
    (SphericalGMM, np.ones((5, 1)), "1 feature(s) (shape=(5, 1)) while a minimum of 2 is required (n_features = 1)"),
])
def test_bad_input_is_one_line_error(make, X, message) -> None:
    data = planted_gmm(500, 0)[0] if X is None else X
    with pytest.raises(OvertensorError) as info:
        make().fit(data)
    assert str(info.value) == message


# -- saved models and the CLI --------------------------------------------------------------
@pytest.fixture()
def cli(tmp_path, monkeypatch):
    """``cli(*args)`` runs ``overtensor *args`` in-process in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    runner = cli_runner()
    return lambda *args: runner.invoke(main, list(args), prog_name="overtensor")


def test_save_load_roundtrip_and_refused_as_tensor(tmp_path) -> None:
    X, _, _ = planted_gmm(5_000, 0)
    for model in (SphericalGMM(seed=2).fit(X), MomentICA(3).fit(X)):
        path = tmp_path / f"{type(model).__name__}.npz"
        models.save(path, model)
        back = models.load(path)
        assert type(back) is type(model) and back.get_params() == model.get_params()
        Y = X[:20]
        out = (back.predict_proba(Y), model.predict_proba(Y)) if isinstance(model, SphericalGMM) else \
            (back.transform(Y), model.transform(Y))
        np.testing.assert_array_equal(*out)  # the same float64 arrays, read back bit for bit
        with pytest.raises(OvertensorError, match=rf"holds a fitted {type(model).__name__} model, not a tensor"):
            ot.load(path)
    with pytest.raises(OvertensorError, match="cannot save an unfitted SphericalGMM"):
        models.save(tmp_path / "u.npz", SphericalGMM())
    ot.save(tmp_path / "t.npz", ot.make_target(dim=4, rank=2, order=3, seed=0))
    with pytest.raises(OvertensorError, match="is not an overtensor model file"):
        models.load(tmp_path / "t.npz")


def test_cli_fit_gmm_and_ica(cli, tmp_path) -> None:
    X, _mu, _w = planted_gmm(20_000, 1)
    np.save(tmp_path / "g.npy", X)
    res = cli("fit", "gmm", "g.npy", "-o", "g.npz", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["n_components"] == 4 and summary["model"] == "SphericalGMM" and summary["seconds"] > 0
    model = models.load(tmp_path / "g.npz")
    ref = SphericalGMM().fit(X)  # the CLI memory-maps the file: the same chunk sums as in memory
    np.testing.assert_allclose(model.means_, ref.means_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(summary["weights"], ref.weights_, rtol=1e-10)
    res = cli("fit", "gmm", "g.npy", "-o", "g2.npz", "--components", "2")
    assert res.exit_code == 0 and "SphericalGMM: 2 components" in res.stdout and "wrote g2.npz" in res.stdout
    res = cli("fit", "gmm", "g.npy", "-o", "g3.npz", "--em-steps", "2")
    assert res.exit_code == 0, res.output
    refined, ref2 = models.load(tmp_path / "g3.npz"), SphericalGMM(em_steps=2).fit(X)
    assert refined.em_steps == 2
    np.testing.assert_allclose(refined.means_, ref2.means_, rtol=1e-10, atol=1e-12)  # same chunk sums, as above
    S, _ = planted_ica(5_000, 0)
    np.save(tmp_path / "i.npy", S)
    res = cli("fit", "ica", "i.npy", "-o", "i.npz", "--json", "-k", "4")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_components"] == 4 and len(json.loads(res.stdout)["kurtosis"]) == 4
    assert models.load(tmp_path / "i.npz").components_.shape == (4, 6)


@pytest.mark.parametrize(("args", "message"), [
    (["fit", "gmm", "g.npy", "-o", "m.npz", "-k", "10"], "n_components must be < d = 10 for this model, got 10"),
    (["fit", "gmm", "g.npy", "-o", "m.npz", "--em-steps", "-1"], "em_steps must be an integer >= 0, got -1"),
    (["fit", "gmm", "g.npy", "-o", "m.npz", "-k", "0"], "n_components must be >= 1, got 0"),
    (["fit", "gmm", "g.npy", "-o", "m.npz", "-k", "many"], "--components must be 'auto' or an integer, got 'many'"),
    (["fit", "ica", "g.npy", "-o", "m.npz", "-k", "11"], "n_components must be <= d = 10 for this model, got 11"),
    (["fit", "gmm", "nan.npy", "-o", "m.npz"], "samples have 1 non-finite (NaN or Inf) entries"),
    (["fit", "ica", "flat.npy", "-o", "m.npz"], "samples must be a 2-d (n, d) array, got shape (30,)"),
    (["fit", "gmm", "g.npy", "-o", "m.npy"], "output file must end in .npz, got m.npy"),
    (["fit", "gmm", "g.npy", "-o", "missing/m.npz"], "cannot write missing/m.npz: folder missing does not exist"),
    (["fit", "gmm", "none.npy", "-o", "m.npz"], "cannot read samples from 'none.npy'"),
])
def test_cli_fit_bad_input_one_line_nothing_written(cli, tmp_path, args, message) -> None:
    X, _, _ = planted_gmm(500, 0)
    np.save(tmp_path / "g.npy", X)
    bad = X[:30].copy()
    bad[3, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "flat.npy", X[:30, 0])
    res = cli(*args)
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "m.npy").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.npy", "g.npy", "nan.npy"]  # no partial file


def test_ica_refine_reaches_an_orthogonal_decomposition() -> None:
    from overtensor.models.ica import refine

    rng = np.random.default_rng(3)
    V = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    kappa = np.array([3.0, 2.0, -1.2, -1.0, 0.5])  # both signs, as uniform and Laplace sources give
    K4 = ot.DenseSymTensor(ot.SymCP(kappa, V, 4).to_dense())
    start = np.linalg.qr(V + 0.05 * rng.normal(size=(5, 5)))[0]  # rows within ~0.1 of the truth
    start = np.linalg.svd(start)[0] @ np.linalg.svd(start)[2]
    Q = refine(K4, start, 100, 1e-14)
    # the fixed point of an exact orthogonal decomposition is its vectors up to sign; the iteration converges
    # cubically, so the step after a turn below 1e-14 (angle < 1.5e-7) lands at rounding, ~1e-15
    np.testing.assert_allclose(np.abs(Q @ V.T), np.eye(5), atol=1e-8)


def test_ica_fourth_moment_matches_einsum() -> None:
    from overtensor.models.ica import fourth_moment

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)) ** 3
    W, c = rng.normal(size=(4, 3)), rng.normal(size=4)
    Z = ot.moment_tensor(X, 4, chunk_size=64).transformed(W, center=c)
    Y = (X - c) @ W
    expected = np.einsum("ni,nj,nl,nm->ijlm", Y, Y, Y, Y) / 300
    # sums of 300 products of size <= max|y|^4 in another order: 300 eps relative to the largest term
    np.testing.assert_allclose(fourth_moment(Z), expected, rtol=0, atol=300 * 2.2e-16 * np.max(np.abs(Y)) ** 4)


def test_ica_implicit_route_recovers_sources(monkeypatch) -> None:
    import overtensor.models.ica as ica_module

    monkeypatch.setattr(ica_module, "DENSE_MAX", 0)  # k > DENSE_MAX: K4 stays implicit, one pass per step
    X, A = planted_ica(20_000, 0, d=4)
    model = MomentICA(seed=0).fit(X)
    assert amari_distance(model.components_, A) < 3.0 / np.sqrt(X.shape[0])  # the dense route's bound
    assert np.sum(model.kurtosis_ > 0) == 2 and np.sum(model.kurtosis_ < 0) == 2
