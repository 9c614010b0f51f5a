"""Implicit moment targets against dense einsum moments, chunking, memmaps, Dask and a planted fit.

Tolerances: every quantity is a sum over n samples of O(1) terms, so
different chunkings (a different summation order) agree to about n·eps
relative, not bit for bit; with n <= 400 below, n·eps < 1e-13 and we allow 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import contract_all_but_one

import overtensor as ot
from overtensor import OvertensorError, moment_tensor
from overtensor.tensors.moment import ELEMENTWISE_FLOPS, MomentOp

RTOL = 1e-12  # n·eps with n <= 400 is < 1e-13; see the module docstring


def dense_moment(X: np.ndarray, order: int) -> np.ndarray:
    """(1/n) Σ_k x_k^{⊗l} by einsum, independent of the library."""
    letters = "abcdef"[:order]
    spec = ",".join("n" + c for c in letters) + "->" + letters
    return np.einsum(spec, *([X] * order)) / X.shape[0]


def relerr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_contraction_norm_and_dense_match_einsum(order, chunk):
    rng = np.random.default_rng(order)
    X = rng.standard_normal((150, 4))
    D = dense_moment(X, order)
    M = moment_tensor(X, order, chunk_size=chunk)
    Y = rng.standard_normal((5, 4))
    expect = np.stack([contract_all_but_one(D, y) for y in Y])
    assert relerr(M.contract(Y), expect) <= RTOL
    assert relerr(M.evaluate(Y), np.sum(expect * Y, axis=1)) <= RTOL
    assert relerr(M.to_dense(), D) <= RTOL
    for route in ("gram", "dense"):
        assert abs(M.norm_sq(route) - np.sum(D**2)) <= RTOL * np.sum(D**2)
        assert M.norm_route == route


def test_route_choice_is_the_cheaper_one():
    rng = np.random.default_rng(0)
    c = ELEMENTWISE_FLOPS
    # p = C(k + 1, 2) distinct pairs: k = 8 -> 36, k = 3 -> 6
    small_n = moment_tensor(rng.standard_normal((10, 8)), 3)  # n² (2k + 3c) = 5200 < n p (2k + c) = 10080
    large_n = moment_tensor(rng.standard_normal((400, 3)), 3)  # n p (2k + c) = 43200 < n² (2k + 3c)
    small_n.norm_sq()
    large_n.norm_sq()
    assert (small_n.norm_route, large_n.norm_route) == ("gram", "dense")
    assert small_n.route_costs() == {"gram": 10**2 * (2 * 8 + 3 * c), "dense": 10 * 36 * (2 * 8 + c)}


def test_inner_products_match_dense():
    rng = np.random.default_rng(1)
    X, Z = rng.standard_normal((60, 3)), rng.standard_normal((40, 3))
    M, N = moment_tensor(X, 3, chunk_size=16), moment_tensor(Z, 3)
    S = ot.make_target(3, 2, 3, kind="gaussian", seed=2)
    DX, DZ = dense_moment(X, 3), dense_moment(Z, 3)
    for other, dense in ((S, S.to_dense()), (ot.DenseSymTensor(DZ), DZ), (N, DZ), (M, DX)):
        expect = float(np.sum(DX * dense))
        assert abs(M.inner(other) - expect) <= RTOL * np.sqrt(np.sum(DX**2) * np.sum(dense**2))


def test_memmap_and_float32_equal_in_memory(tmp_path):
    X = np.random.default_rng(3).standard_normal((97, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    Y = np.random.default_rng(4).standard_normal((3, 4))
    ref = moment_tensor(X.astype(np.float64), 3, chunk_size=10)
    for source in (np.load(tmp_path / "x.npy", mmap_mode="r"), tmp_path / "x.npy", X):
        M = moment_tensor(source, 3, chunk_size=10)
        # float32 -> float64 is exact and the chunks are the same: equal bit for bit
        np.testing.assert_array_equal(M.contract(Y), ref.contract(Y))
        assert M.norm_sq() == ref.norm_sq()


def test_integer_samples_are_read_as_float():
    X = np.random.default_rng(5).integers(-3, 4, size=(50, 3))
    M = moment_tensor(X, 3)
    assert relerr(M.to_dense(), dense_moment(X.astype(float), 3)) <= RTOL


def test_mean_and_second_moment_from_the_construction_pass():
    X = np.random.default_rng(6).standard_normal((80, 3)) + 1.0
    M = moment_tensor(X, 3, chunk_size=9)
    assert relerr(M.mean, X.mean(axis=0)) <= RTOL
    assert relerr(M.second_moment, X.T @ X / 80) <= RTOL


def test_second_moment_past_the_accumulated_dimension(monkeypatch):
    import overtensor.tensors.moment as moments

    monkeypatch.setattr(moments, "STATS_MAX_DIM", 2)  # d = 3 is then too wide for the construction pass
    X = np.random.default_rng(6).standard_normal((40, 3))
    M = moment_tensor(X, 3, chunk_size=9)
    W, c = np.random.default_rng(7).standard_normal((3, 2)), np.ones(3)
    assert relerr(M.second_moment, X.T @ X / 40) <= RTOL
    assert relerr(M.transformed(W, c).second_moment, ((X - c) @ W).T @ ((X - c) @ W) / 40) <= RTOL


def test_transformed_is_the_moment_of_the_mapped_samples():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((120, 4)) + 2.0
    W, c = rng.standard_normal((4, 2)), rng.standard_normal(4)
    M = moment_tensor(X, 3, chunk_size=32).transformed(W, center=c)
    Z = (X - c) @ W
    assert M.dim == 2
    assert relerr(M.to_dense(), dense_moment(Z, 3)) <= RTOL
    assert relerr(M.mean, Z.mean(axis=0)) <= RTOL
    assert relerr(M.second_moment, Z.T @ Z / 120) <= RTOL
    twice = M.transformed(np.eye(2)[:, :1] * 2.0, center=np.ones(2))  # maps compose
    assert relerr(twice.to_dense(), dense_moment((Z - 1.0) @ (np.eye(2)[:, :1] * 2.0), 3)) <= RTOL


def _counting(monkeypatch) -> list[int]:
    from overtensor.tensors.moment import Samples

    calls = [0]
    original = Samples.map_reduce

    def counted(self, fn, *args):
        calls[0] += 1
        return original(self, fn, *args)

    monkeypatch.setattr(Samples, "map_reduce", counted)
    return calls


def test_a_batch_shares_each_data_pass(monkeypatch):
    X = np.random.default_rng(8).standard_normal((200, 4))
    M = moment_tensor(X, 3)
    M.norm_sq()
    calls = _counting(monkeypatch)
    single = ot.decompose(M, 3, "gd", seed=1, max_steps=20, tol=0, step_size=0.5)
    passes = calls[0]
    calls[0] = 0
    batch = ot.decompose_batch(M, 3, "gd", seeds=[0, 1, 2], max_steps=20, tol=0, step_size=0.5)
    assert calls[0] == passes  # three runs, the passes of one
    # the (B m)-row product rounds per column as the m-row one up to BLAS blocking: n·eps
    np.testing.assert_allclose(batch[1].params, single.params, rtol=0, atol=RTOL * np.abs(single.params).max())


def test_distinct_data_sets_refused_in_one_batch():
    rng = np.random.default_rng(9)
    a, b = moment_tensor(rng.standard_normal((10, 2)), 3), moment_tensor(rng.standard_normal((10, 2)), 3)
    with pytest.raises(OvertensorError, match="share one data set"):
        ot.decompose_batch([a, b], 2, "gd", seeds=[0, 1], max_steps=1)


def test_planted_mixture_is_recovered():
    """Samples on three orthonormal points: the moment is exactly Σ_j (n_j/n) a_j^{⊗3}."""
    rng = np.random.default_rng(10)
    A = np.linalg.qr(rng.standard_normal((6, 3)))[0].T
    labels = rng.choice(3, size=2000, p=[0.5, 0.3, 0.2])
    truth = ot.SymCP(np.bincount(labels) / labels.size, A, 3)
    M = moment_tensor(A[labels], 3)
    result = ot.decompose(M, 6, "beyond_lazy", seed=0)
    assert result.relative_error <= 1e-4
    # the reported error is against the implicit moment; check it against the truth independently
    assert result.model.distance(truth) <= 2e-4 * truth.norm()
    power = ot.decompose(M, 3, "power", seed=0)
    assert power.model.distance(truth) <= 1e-6 * truth.norm()


@pytest.mark.parametrize("method", ["lazy", "lazy_gd", "als"])
def test_other_methods_accept_a_moment_target(method):
    X = np.random.default_rng(11).standard_normal((100, 3))
    M, S = moment_tensor(X, 3), ot.SymCP(np.full(100, 0.01), X, 3)
    opts = {"max_steps": 5} if method == "lazy_gd" else {"max_iter": 5}
    if method == "lazy":  # CG for both: "auto" solves the factored target exactly, the moment by CG
        opts["solver"] = "cg"
    a, b = ot.decompose(M, 2, method, **opts), ot.decompose(S, 2, method, **opts)
    # the same target given as n factored components: the same run up to n·eps rounding
    assert abs(a.relative_error - b.relative_error) <= 1e-8


def test_moment_op_moves_to_another_backend():
    xp = pytest.importorskip("array_api_strict")
    X = np.random.default_rng(12).standard_normal((30, 3))
    M = moment_tensor(X, 3)
    Y = np.random.default_rng(13).standard_normal((1, 2, 3))
    out = M.op.contract(xp.asarray(Y))
    assert isinstance(M.op, MomentOp)
    np.testing.assert_array_equal(np.asarray(out), M.op.contract(Y))


@pytest.mark.parametrize(
    "samples,kwargs,match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), {}, r"1 non-finite"),
        (np.array([[0.0, np.inf], [1.0, -np.inf]]), {}, r"2 non-finite"),
        (np.zeros(5), {}, r"2-d \(n, d\) array, got shape \(5,\)"),
        (np.zeros((1, 3)), {}, r"at least 2 rows"),
        (np.array([["a", "b"], ["c", "d"]], dtype=object), {}, r"dtype object"),
        (np.zeros((3, 2), dtype=bool), {}, r"dtype bool"),
        (np.zeros((3, 2), dtype=complex), {}, r"dtype complex128"),
        (np.zeros((3, 2)), {"chunk_size": 0}, r"chunk_size must be an integer >= 1, got 0"),
    ],
)
def test_bad_samples_raise_one_line(samples, kwargs, match):
    with pytest.raises(OvertensorError, match=match) as info:
        moment_tensor(samples, 3, **kwargs)
    assert "\n" not in str(info.value)


def test_object_array_of_numbers_is_accepted():
    X = np.array([[1, 2.5], [3, 4]], dtype=object)
    assert relerr(moment_tensor(X, 2).to_dense(), dense_moment(X.astype(float), 2)) <= RTOL


def test_bad_npy_files(tmp_path):
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    with pytest.raises(OvertensorError, match=r"2-d \(n, d\) array, got shape \(2, 2, 2\)"):
        moment_tensor(np.load(tmp_path / "cube.npy", mmap_mode="r"), 3)
    with pytest.raises(OvertensorError, match=r"2-d .* got shape \(2, 2, 2\)"):
        moment_tensor(tmp_path / "cube.npy", 3)
    X = np.ones((50, 3))
    X[47, 1] = np.nan  # in the last chunk of 10: the check reads every chunk
    np.save(tmp_path / "nan.npy", X)
    with pytest.raises(OvertensorError, match="1 non-finite"):
        moment_tensor(np.load(tmp_path / "nan.npy", mmap_mode="r"), 3, chunk_size=10)
    with pytest.raises(OvertensorError, match="cannot read samples"):
        moment_tensor(tmp_path / "missing.npy", 3)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    # in-process workers over the inproc transport; their HTTP servers would bind every interface
    # with dashboard_address=None, so bind them to loopback explicitly
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0",
                                  worker_dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster) as client:
        yield client


def test_dask_array_on_a_local_cluster_equals_numpy(dask_client):
    import dask.array as da

    rng = np.random.default_rng(14)
    X = rng.standard_normal((400, 4))
    X[::7] += 1.0
    ref = moment_tensor(X, 3)
    Md = moment_tensor(da.from_array(X, chunks=(130, 2)), 3)  # uneven row blocks, split columns
    Y = rng.standard_normal((2, 3, 4))
    assert relerr(Md.op.contract(Y), ref.op.contract(Y)) <= RTOL
    rechunked = moment_tensor(da.from_array(X, chunks=(130, 2)), 3, chunk_size=64)  # rows re-blocked by 64
    assert relerr(rechunked.contract(Y[0]), ref.contract(Y[0])) <= RTOL
    for route in ("gram", "dense"):
        assert abs(Md.norm_sq(route) / ref.norm_sq(route) - 1) <= RTOL
    assert relerr(Md.second_moment, ref.second_moment) <= RTOL
    W, c = rng.standard_normal((4, 2)), ref.mean  # the affine map travels with each block's task
    Yk = Y[:, :, :2]
    assert relerr(Md.transformed(W, c).op.contract(Yk), ref.transformed(W, c).op.contract(Yk)) <= RTOL
    a = ot.decompose(Md, 3, "gd", max_steps=5, tol=0, step_size=0.3)
    b = ot.decompose(ref, 3, "gd", max_steps=5, tol=0, step_size=0.3)
    # 5 steps amplify the per-step n·eps differences little; 1e-10 is the bound
    assert relerr(a.params, b.params) <= 1e-10
    bad = X.copy()
    bad[399, 0] = np.nan
    with pytest.raises(OvertensorError, match="1 non-finite"):
        moment_tensor(da.from_array(bad, chunks=(100, 4)), 3)


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_distinct_products_match_their_index_tuples(order):
    from overtensor.tensors.moment import _unique_products, _unique_rows

    X = np.random.default_rng(order).standard_normal((6, 4))
    idx, mult = _unique_rows(4, order)
    expect = np.prod(X[:, idx], axis=2)  # x_{j_1} ⋯ x_{j_{l-1}} by gathering, column by column
    np.testing.assert_allclose(_unique_products(X, order), expect, rtol=1e-14)
    assert mult.sum() == 4 ** (order - 1)  # every ordered tuple counted once


def test_passes_allocate_chunks_not_n_by_n():
    """Peak allocations (tracemalloc, which NumPy reports to) stay at the chunk sizes of the docstrings."""
    import tracemalloc

    from overtensor.tensors.moment import DEFAULT_CHUNK, GRAM_BLOCK

    n, d, N = 6000, 5, 20
    M = moment_tensor(np.random.default_rng(15).standard_normal((n, d)), 3)
    Y = np.random.default_rng(16).standard_normal((N, d))
    for run, budget in (
        (lambda: M.contract(Y), 2 * DEFAULT_CHUNK * (N + d) * 8),  # P (b, N) and its power, O(b (N + d))
        (lambda: M.norm_sq("gram"), 4 * GRAM_BLOCK**2 * 8),  # a few Gram blocks; n × n would be 288 MB
    ):
        tracemalloc.start()
        run()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak <= budget, (peak, budget)
