r"""Spherical Gaussian mixtures by the method of moments (DESIGN.md §8–9).

``x ~ Σ_j w_j N(μ_j, σ² I)`` with ``k < d`` components has

    M2 = E[x xᵀ] - σ² I          = Σ_j w_j μ_j μ_jᵀ
    M3 = E[x^{⊗3}] - σ² S_{m1}    = Σ_j w_j μ_j^{⊗3}          (m1 = E[x])

and ``σ²`` is the mean of the ``d - k`` smallest eigenvalues of the covariance
(the smallest alone is biased low on samples). ``M3`` is decomposed by
over-parameterized ``beyond_lazy`` descent and :func:`overtensor.recover`, which
decide how many components there are:

- ``whiten=True`` (the default): ``W = U Λ^{-1/2}`` from the top ``k̂`` eigenpairs of
  ``M2``, with ``k̂`` every eigenvalue of ``E[x xᵀ]`` above its noise floor (or the
  given ``n_components``); one pass over the data builds the small dense ``k̂³``
  whitened moment, whose components ``λ_j v_j^{⊗3}`` are orthonormal; descent then
  never touches the data again. Un-whitening gives ``μ_j = λ_j U Λ^{1/2} v_j`` and
  ``w_j = λ_j^{-2}``.
- ``whiten=False``: descent on the raw, implicit ``d``-dimensional ``M3`` (the
  paper's setting: non-orthogonal components), one pass over the data per step.
  A component ``c_j v_j^{⊗3}`` gives ``μ_j = t_j v_j`` with ``w_j t_j³ = c_j`` and
  ``w_j t_j² = a_j`` from the least-squares fit of ``M2`` by ``Σ_j a_j v_j v_jᵀ``.

Whitening is the default because it is as accurate and far faster (measured in
docs/models.md: every step of the raw route is a pass over the data).

Moments are statistically less efficient than the likelihood; ``em_steps`` EM
iterations from the moment estimate (one chunked pass over the data each, so a
memory-mapped file stays on disk) close most of the gap to converged EM.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted

from ..analysis.recovery import recover
from ..errors import OvertensorError
from ..pipeline import polish
from ..tensors.corrections import CorrectionS, transform
from ..tensors.dense import DenseSymTensor
from ..tensors.symcp import SymCP
from ._common import as_moment, check_components, check_features, check_seed, descend, noise_floor_rank

__all__ = ["SphericalGMM"]

#: Over-parameterization of the descent: ``m = OVER · k̂ + 2`` components.
OVER = 2
#: A mixture weight is at most 1; descent that fits the sampling noise of ``M3`` adds small components
#: whose implied weight ``w = λ^{-2}`` (whitened) is far above it. Kept up to 2 for the sampling error
#: of a weight near 1 (a one-component fit).
MAX_WEIGHT = 2.0


class SphericalGMM(DensityMixin, BaseEstimator):
    """Spherical Gaussian mixture ``Σ_j w_j N(μ_j, σ² I)`` fitted by the method of moments.

    Parameters
    ----------
    n_components : "auto" or int in ``[1, d)``; "auto": found by descent + recover
    whiten : bool, decompose the whitened moment (fast, default) or the raw one
    seed : int, seed of the descent
    max_epochs : int, epochs of ``beyond_lazy``
    cos : float in (0, 1], directions that :func:`~overtensor.recover` merges
    mass_fraction : float, components lighter than this fraction of the heaviest are dropped
    chunk_size : int or None, rows per pass over the samples
    em_steps : int >= 0, EM iterations (shared ``σ²``) from the moment estimate, one pass each

    Attributes
    ----------
    means_ : (k, d) array; weights_ : (k,) array summing to 1; variance_ : float, ``σ²``
    n_components_ : int, ``k``; n_features_in_ : int, ``d``
    candidates_ : int, ``k̂``, the directions above the noise floor (or the given count)

    When descent and the weight screen leave no component (data that are no mixture),
    the fit is the single Gaussian ``N(E[x], σ² I)``.

    Examples
    --------
    >>> import numpy as np
    >>> from overtensor.models import SphericalGMM
    >>> rng = np.random.default_rng(0)
    >>> means = 4 * np.eye(3, 5)                           # 3 means in d = 5, unit variance
    >>> X = means[rng.integers(0, 3, size=20_000)] + rng.standard_normal((20_000, 5))
    >>> gmm = SphericalGMM(seed=0).fit(X)                  # n_components="auto"
    >>> gmm.n_components_, gmm.means_.shape, abs(gmm.variance_ - 1) < 0.1
    (3, (3, 5), True)
    >>> found = gmm.means_[np.argsort(gmm.means_[:, :3].argmax(axis=1))]
    >>> bool(np.abs(found - means).max() < 0.1), np.round(gmm.weights_, 1).tolist()
    (True, [0.3, 0.3, 0.3])
    """

    def __init__(self, n_components: int | str = "auto", *, whiten: bool = True, seed: int = 0,
                 max_epochs: int = 20, cos: float = 0.9, mass_fraction: float = 1e-2,
                 chunk_size: int | None = None, em_steps: int = 0) -> None:
        self.n_components = n_components
        self.whiten = whiten
        self.seed = seed
        self.max_epochs = max_epochs
        self.cos = cos
        self.mass_fraction = mass_fraction
        self.chunk_size = chunk_size
        self.em_steps = em_steps

    # -- fitting ---------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> SphericalGMM:
        """Fit to samples ``X (n, d)`` (array, memmap, ``.npy`` path or dask.array); returns ``self``."""
        T = as_moment(X, 3, self.chunk_size, min_features=2)
        d, n = T.dim, T.n_samples
        if d < 2:
            raise OvertensorError(f"a spherical mixture needs k < d, so n_features >= 2, got n_features = {d}")
        given = check_components(self.n_components, d, allow_auto=True, allow_none=False, below_dim=True)
        seed = check_seed(self.seed)
        steps = _check_steps(self.em_steps)
        m1, S = T.mean, T.second_moment
        ev, U = np.linalg.eigh(S)
        ev, U = ev[::-1], U[:, ::-1]
        k_hat = given if given is not None else min(max(noise_floor_rank(ev, n), 1), d - 1)
        sigma2 = float(np.mean(np.linalg.eigvalsh(S - np.outer(m1, m1))[: d - k_hat]))
        lam = ev[:k_hat] - sigma2  # decreasing: the positive ones lead
        k_hat = int(np.sum(lam > 0))
        if k_hat == 0:
            raise OvertensorError("no direction of E[x xᵀ] lies above the noise floor: the data look like one "
                                  "centred Gaussian, not a mixture")
        target = T - sigma2 * CorrectionS(m1)
        if self.whiten:
            means, weights = self._fit_whitened(target, U[:, :k_hat], lam[:k_hat], seed, given)
        else:
            means, weights = self._fit_raw(target, S - sigma2 * np.eye(d), k_hat, seed, given)
        if means.shape[0] == 0:  # every candidate screened out: the one-Gaussian model, N(E[x], σ² I)
            means, weights = m1[None, :], np.ones(1)
        weights = weights / weights.sum()
        for _ in range(steps):
            means, weights, sigma2 = em_step(T.samples, means, weights, sigma2)
        self.means_, self.weights_ = means, weights
        self.variance_ = sigma2
        self.n_components_ = int(means.shape[0])
        self.n_features_in_ = d
        self.candidates_ = k_hat
        return self

    def _decompose(self, target: Any, k_hat: int, seed: int, given: int | None, tol: float = 1e-4) -> SymCP:
        """``beyond_lazy`` with ``OVER k̂ + 2`` components, then :func:`recover`: heaviest (largest mass) first,
        only the ``given`` heaviest when a count is given."""
        model = descend(target, OVER * k_hat + 2, seed, max_epochs=self.max_epochs, tol=tol)
        comps = recover(model, mass_fraction=self.mass_fraction, cos=self.cos)
        return comps if given is None else SymCP(comps.weights[:given], comps.vectors[:given], comps.order)

    def _fit_whitened(self, target: Any, U: np.ndarray, lam: np.ndarray, seed: int,
                      given: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Decompose the dense ``k̂³`` whitened ``M3``; un-whiten ``μ_j = λ_j U Λ^{1/2} v_j``, ``w_j = λ_j^{-2}``."""
        W = U / np.sqrt(lam)
        whitened = transform(target, W)
        small = DenseSymTensor(whitened.to_dense(), rtol=1e-6)
        moment = whitened.terms[0]  # E[y^{⊗3}] of y = Wᵀ x: its samples give E‖y‖⁶
        noise = np.sqrt(float(moment.samples.map_reduce(_sixth_chunk)) / moment.n_samples / moment.n_samples)
        tol = 0.5 * noise / max(float(np.linalg.norm(small.array)), np.finfo(float).tiny)
        comps = _polished(self._decompose(small, lam.size, seed, given, tol=tol), small)
        scale = comps.weights  # λ_j > 0 (odd order: a sign is a flipped vector)
        means = (scale[:, None] * comps.vectors) @ (U * np.sqrt(lam)).T
        return _heaviest(means, scale**-2.0, given is None)

    def _fit_raw(self, target: Any, M2: np.ndarray, k_hat: int, seed: int,
                 given: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Decompose the implicit ``M3``; scales and weights from ``c_j`` and the fit of ``M2``."""
        comps = self._decompose(target, k_hat, seed, given, tol=0.5 * _sampling_error(target))
        V, c = comps.vectors, comps.weights
        a = np.linalg.lstsq((V @ V.T) ** 2, np.einsum("jd,de,je->j", V, M2, V), rcond=None)[0]
        ok = a > 0
        if not np.any(ok):
            raise OvertensorError("no recovered component has a positive second moment; the data do not fit "
                                  "a spherical mixture")
        t = c[ok] / a[ok]
        return _heaviest(t[:, None] * V[ok], a[ok] ** 3 / c[ok] ** 2, given is None)

    # -- the fitted density ------------------------------------------------------
    def _log_joint(self, X: Any) -> np.ndarray:
        """``log w_j + log N(x; μ_j, σ² I)``, ``(n, k)``."""
        check_is_fitted(self, "means_")
        arr = check_features(X, self.n_features_in_, type(self).__name__)
        d2 = (np.sum(arr**2, axis=1)[:, None] - 2 * arr @ self.means_.T
              + np.sum(self.means_**2, axis=1)[None, :])
        s2 = max(self.variance_, np.finfo(float).tiny)
        with np.errstate(divide="ignore"):
            logw = np.log(self.weights_)
        return logw - 0.5 * np.maximum(d2, 0) / s2 - 0.5 * arr.shape[1] * np.log(2 * np.pi * s2)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior of each component, ``(n, k)``, rows summing to 1."""
        lj = self._log_joint(X)
        return np.exp(lj - logsumexp(lj, axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        """The most likely component of each row, ``(n,)`` ints."""
        return np.argmax(self._log_joint(X), axis=1)

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each row under the fitted mixture, ``(n,)``."""
        return logsumexp(self._log_joint(X), axis=1)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood of the rows of ``X``."""
        return float(np.mean(self.score_samples(X)))


def _check_steps(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise OvertensorError(f"em_steps must be an integer >= 0, got {value!r}")
    return int(value)


def _em_chunk(X: np.ndarray, means: np.ndarray, logw: np.ndarray,
              sigma2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Responsibilities ``r (b, k)`` of a chunk; returns ``Σ r``, ``rᵀ X`` and ``rᵀ ‖x‖²``."""
    sq = np.einsum("ij,ij->i", X, X)
    # ‖x‖² is the same for every component of a row: it cancels in the normalization
    log_joint = (X @ means.T - 0.5 * np.sum(means**2, axis=1)) / sigma2 + logw
    log_joint -= log_joint.max(axis=1, keepdims=True)
    r = np.exp(log_joint)
    r /= r.sum(axis=1, keepdims=True)
    return r.sum(axis=0), r.T @ X, r.T @ sq


def em_step(samples: Any, means: np.ndarray, weights: np.ndarray,
            sigma2: float) -> tuple[np.ndarray, np.ndarray, float]:
    """One EM iteration for ``Σ_j w_j N(μ_j, σ² I)`` (shared ``σ²``), one chunked pass over ``samples``.

    Parameters
    ----------
    samples : :class:`~overtensor.tensors.moment.Samples`, rows ``x (n, d)``
    means : (k, d) array; weights : (k,) array; sigma2 : float > 0

    Returns
    -------
    means (k, d), weights (k,), sigma2: ``μ_j = Σ r_ij x_i / N_j``, ``w_j = N_j / n`` and
    ``σ² = Σ_j (Σ_i r_ij ‖x_i‖² - N_j ‖μ_j‖²) / (n d)``. A component that no row
    claims (``N_j = 0``) keeps its mean and gets weight 0.
    """
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    N, S, Q = samples.map_reduce(_em_chunk, means, logw, max(sigma2, np.finfo(float).tiny))
    n, d = samples.n, means.shape[1]
    safe = np.where(N > 0, N, 1.0)
    new = np.where((N > 0)[:, None], S / safe[:, None], means)
    var = float(np.sum(Q - N * np.sum(new**2, axis=1)) / (n * d))
    return new, N / N.sum(), max(var, np.finfo(float).tiny)


def _polished(comps: SymCP, small: DenseSymTensor) -> SymCP:
    """The components that pass the weight screen, polished (Levenberg–Marquardt, ``m`` = their count) on
    the small whitened ``M3``.

    Descent stops at the moment's sampling error, where its point still depends on the seed
    (n = 1e6, d = 100, seed 4 of docs/models.md: mean error 0.0200 for seed 0, 0.0166 for seeds 1
    and 2, and 0.0166 for all three after the polish); the polish takes it to the nearest
    stationary point of the ``m``-component fit, which costs ``O(m² k̂)`` per step here.
    """
    keep = (comps.weights > 0) & (comps.weights**-2.0 <= MAX_WEIGHT)
    if not np.any(keep):
        return comps
    start = SymCP(comps.weights[keep], comps.vectors[keep], comps.order)
    return polish(start, small).model.normalize()


def _sixth_chunk(X: np.ndarray) -> np.ndarray:
    return np.sum(np.sum(X**2, axis=1) ** 3)


def _sampling_error(target: Any) -> float:
    """Relative sampling error of ``M3`` to stop descent at, so that it does not fit noise with extra components.

    The sample moment's squared error has mean ``(E‖x‖⁶ - ‖E x^{⊗3}‖²) / n``: one pass for ``E‖x‖⁶``.
    (The whitened route, :meth:`SphericalGMM._fit_whitened`, bounds it by ``E‖y‖⁶ / n``, which saves the
    pass for ``‖E y^{⊗3}‖²``.)
    """
    T = target.terms[0]
    sixth = float(T.samples.map_reduce(_sixth_chunk)) / T.n_samples
    return float(np.sqrt(max(sixth - T.norm_sq(), 0.0) / T.n_samples) / max(target.norm(), np.finfo(float).tiny))


def _heaviest(means: np.ndarray, weights: np.ndarray, screen: bool) -> tuple[np.ndarray, np.ndarray]:
    """Components sorted by decreasing weight.

    Non-finite ones are dropped, and with ``screen`` those above ``MAX_WEIGHT``.
    """
    ok = np.isfinite(weights) & np.all(np.isfinite(means), axis=1)
    if screen:
        ok &= weights <= MAX_WEIGHT
    order = np.argsort(-weights[ok], kind="stable")
    return means[ok][order], weights[ok][order]
