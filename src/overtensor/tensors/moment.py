r"""Implicit sample-moment targets ``T = (1/n) Σ_k x_k^{⊗l}`` (DESIGN.md §8).

The samples ``X (n, d)`` stay where they are (a NumPy array, a memory-mapped
``.npy`` or a ``dask.array``); every quantity the solvers need is one pass over
row chunks ``X_c (b, d)``:

    P = X_c Yᵀ                              (b, N)   for N query rows Y
    T(y^{⊗(l-1)}, ·) += (P^{∘(l-1)})ᵀ X_c / n       (N, d)

``O(n N d)`` flops and ``O(b (N + d))`` memory: never an ``n × n`` array and
never ``d^l``, except to get ``‖T‖²`` where the dense moment is the cheaper
exact route (:meth:`MomentTensor.norm_sq`). A batch of ``B`` runs contracts its
``(B, m, d)`` rows in one pass (``N = B m``). With a ``dask.array`` each pass is
a map-reduce over its row blocks, computed by ``dask.compute`` on the active
scheduler (a ``dask.distributed`` client when one is active); the chunk
function is the same as in memory, so only the order of the final sums differs.

Samples are read chunk by chunk as float64; integer dtypes are accepted (exact
up to ``2^53``), float16/32 are widened per chunk, bool, complex, string and
object dtypes are refused (an in-memory object array is accepted when NumPy can
read it as float64). In-memory samples are not copied: changing them afterwards
changes the target.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from ..backend import Array, array_namespace, row_dot, to_numpy
from ..errors import OvertensorError
from ..validation import MAX_DENSE_ENTRIES, at_points, check_dense_size, check_order
from .algebra import TermAlgebra
from .kernels import power

__all__ = ["MomentTensor", "MomentOp", "Samples", "moment_tensor", "DEFAULT_CHUNK", "GRAM_BLOCK"]

#: Rows per chunk when none is given (NumPy and memory-mapped samples; a dask.array keeps its blocks).
DEFAULT_CHUNK = 4096
#: Rows per side of one block of the ``n × n`` Gram route: 512 KB, so the ``l`` elementwise passes
#: over it stay in cache (4-5x faster than 1024 at d = 10, benchmarks/bench_moments.py).
GRAM_BLOCK = 256
#: Cost, in flops, of one elementwise pass over an entry (``x^{∘l}`` of a Gram block, or of a
#: Kronecker row): measured about 12 next to BLAS flops (benchmarks/bench_moments.py). Only the
#: choice of route depends on it; both routes are exact.
ELEMENTWISE_FLOPS = 12
#: Entries of one chunk of ``x^{⊗(l-1)}`` rows in the dense-moment route (32 MB).
KR_ENTRIES = 2**22
#: Largest ``d`` whose ``E[x xᵀ]`` the construction pass accumulates (32 MB); above, on demand.
STATS_MAX_DIM = 2048
_ACCEPTED_KINDS = "iuf"


def _is_dask(x: object) -> bool:
    return type(x).__module__.split(".")[0] == "dask" and hasattr(x, "to_delayed")


def _tree_sum(parts: list[Any]) -> Any:
    """Pairwise sum of ``dask.delayed`` partial results: a reduction tree of depth ``log2(blocks)``."""
    import dask

    while len(parts) > 1:
        parts = [dask.delayed(_add)(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return parts[0]


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, tuple):
        return tuple(x + y for x, y in zip(a, b))
    return a + b


def _prepare(block: Any, A: np.ndarray | None, c: np.ndarray | None) -> np.ndarray:
    """A chunk as float64 rows, through the affine map ``x ↦ x A + c`` when one is set."""
    X = np.asarray(block, dtype=np.float64)
    if A is not None:
        X = X @ A
    if c is not None:
        X = X + c
    return X


def _apply(fn: Callable[..., Any], A: np.ndarray | None, c: np.ndarray | None, block: Any, *args: Any) -> Any:
    return fn(_prepare(block, A, c), *args)


class Samples:
    """Rows ``x_k`` of a data set, read in chunks, optionally through an affine map ``x ↦ x A + c``.

    Not an array and not a dataclass, so :func:`overtensor.tensors.kernels.map_arrays`
    leaves it alone: every run of a batch shares it.

    Parameters
    ----------
    data : (n, d) NumPy array, memmap or dask.array (already checked)
    chunk_size : rows per chunk; for a dask.array, None keeps its row blocks
    A : (d, k) array or None; c : (k,) array or None
    """

    def __init__(self, data: Any, chunk_size: int | None, A: np.ndarray | None = None,
                 c: np.ndarray | None = None) -> None:
        self.data = data
        self.chunk_size = chunk_size
        self.A = A
        self.c = c
        self.is_dask = _is_dask(data)
        self._rows: Any = None

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    @property
    def raw_dim(self) -> int:
        return int(self.data.shape[1])

    @property
    def dim(self) -> int:
        return self.raw_dim if self.A is None else int(self.A.shape[1])

    def mapped(self, A: np.ndarray, c: np.ndarray | None) -> Samples:
        """The same rows through ``y ↦ y A + c`` after this map: ``x (A_0 A) + (c_0 A + c)``."""
        A_new = A if self.A is None else self.A @ A
        c_new = None if self.c is None else self.c @ A
        if c is not None:
            c_new = c if c_new is None else c_new + c
        return Samples(self.data, self.chunk_size, A_new, c_new)

    def _blocks(self) -> Iterator[Any]:
        step = self.chunk_size or DEFAULT_CHUNK
        for start in range(0, self.n, step):
            yield self.data[start:start + step]

    def chunks(self) -> Iterator[np.ndarray]:
        """The (mapped) rows, chunk by chunk, as float64 ``(b, k)`` arrays."""
        if self.is_dask:
            for block in self._dask_rows().to_delayed().ravel():
                yield _prepare(block.compute(), self.A, self.c)
            return
        for block in self._blocks():
            yield _prepare(block, self.A, self.c)

    def _dask_rows(self) -> Any:
        """The dask.array in row blocks spanning every column (built once: a graph per pass costs time)."""
        if self._rows is None:
            self._rows = self.data.rechunk({0: self.chunk_size, 1: -1} if self.chunk_size else {1: -1})
        return self._rows

    def map_reduce(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``Σ_chunks fn(X_c, *args)``: an array, or a tuple of arrays summed entry-wise.

        In memory the chunks are summed in order; a dask.array's blocks are
        mapped on its scheduler and summed by a pairwise tree.
        """
        if self.is_dask:
            import dask

            parts = [dask.delayed(_apply)(fn, self.A, self.c, block, *args)
                     for block in self._dask_rows().to_delayed().ravel()]
            return dask.compute(_tree_sum(parts))[0]
        total = None
        for block in self._blocks():
            part = fn(_prepare(block, self.A, self.c), *args)
            total = part if total is None else _add(total, part)
        return total


# -- chunk functions (module level, so a distributed scheduler can ship them) --
def _contract_chunk(X: np.ndarray, Y: np.ndarray, order: int) -> np.ndarray:
    """``Σ_rows <x, y_j>^{l-1} x`` for each query row: ``(b, k), (N, k) -> (N, k)``."""
    return power(X @ Y.T, order - 1).T @ X


def _gram_chunk(X: np.ndarray, Y: np.ndarray, order: int) -> np.ndarray:
    """``Σ_{x ∈ X_c, y ∈ Y} <x, y>^l`` in ``GRAM_BLOCK``-square blocks: a 0-d array."""
    total = np.zeros(())
    for i in range(0, X.shape[0], GRAM_BLOCK):
        for j in range(0, Y.shape[0], GRAM_BLOCK):
            total = total + np.sum(power(X[i:i + GRAM_BLOCK] @ Y[j:j + GRAM_BLOCK].T, order))
    return total


def _dense_chunk(X: np.ndarray, order: int) -> np.ndarray:
    """``Σ_rows x ⊗ x^{⊗(l-1)}`` as a ``(k, k^{l-1})`` matrix: one product per sub-chunk."""
    k = X.shape[1]
    rows = max(1, KR_ENTRIES // k ** (order - 1))
    out = np.zeros((k, k ** (order - 1)))
    for i in range(0, X.shape[0], rows):
        Xi = X[i:i + rows]
        K = Xi
        for _ in range(order - 2):  # row-wise Kronecker powers, x^{⊗(l-1)} flattened
            K = (K[:, :, None] * Xi[:, None, :]).reshape(Xi.shape[0], -1)
        out += Xi.T @ K
    return out


def _unique_rows(k: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Index tuples ``j_1 <= … <= j_{l-1}`` of ``x^{⊗(l-1)}``'s distinct entries, and how often each occurs.

    Returns ``(p, l-1)`` int indices and ``(p,)`` multiplicities ``(l-1)! / Π_v c_v!``
    (``c_v``: how often index ``v`` repeats), ``p = C(k + l - 2, l - 1)``.
    """
    idx = np.array(list(itertools.combinations_with_replacement(range(k), order - 1)), dtype=np.intp)
    idx = idx.reshape(-1, order - 1)
    mult = np.full(idx.shape[0], float(math.factorial(order - 1)))
    for v in range(k):
        counts = np.sum(idx == v, axis=1)
        mult /= np.array([math.factorial(int(c)) for c in range(order)])[counts]
    return idx, mult


def _unique_products(X: np.ndarray, order: int) -> np.ndarray:
    """Columns ``x_{j_1} ⋯ x_{j_{l-1}}``, ``j_1 <= … <= j_{l-1}``, in :func:`_unique_rows` order: ``(b, p)``.

    Built level by level from contiguous slices (no gather): the tuples of one more
    index that start with ``j`` are ``x_j`` times the previous level's columns whose
    first index is ``>= j``, a suffix of them in lexicographic order.
    """
    U, first = X, np.arange(X.shape[1])
    for _ in range(order - 2):
        starts = np.searchsorted(first, np.arange(X.shape[1]))
        widths = U.shape[1] - starts
        out = np.empty((X.shape[0], int(widths.sum())))
        pos = 0
        for j, (start, width) in enumerate(zip(starts, widths)):
            np.multiply(X[:, j, None], U[:, start:], out=out[:, pos:pos + width])
            pos += width
        U, first = out, np.repeat(np.arange(X.shape[1]), widths)
    return U


def _unique_dense_chunk(X: np.ndarray, order: int) -> np.ndarray:
    """``Σ_rows x ⊗ (x_{j_1} ⋯ x_{j_{l-1}})`` over the distinct index tuples: ``(k, p)``."""
    p = math.comb(X.shape[1] + order - 2, order - 1)
    rows = max(1, KR_ENTRIES // p)
    out = np.zeros((X.shape[1], p))
    for i in range(0, X.shape[0], rows):
        Xi = X[i:i + rows]
        out += Xi.T @ _unique_products(Xi, order)
    return out


def _stats_chunk(X: np.ndarray, with_gram: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(non-finite entries, ``Σ x``, ``Σ x xᵀ`` or an empty array) of a chunk."""
    bad = np.asarray(float(X.size - np.count_nonzero(np.isfinite(X))))
    with np.errstate(invalid="ignore", over="ignore"):  # a bad chunk is refused by the caller
        return bad, X.sum(axis=0), X.T @ X if with_gram else np.zeros(0)


def _gram_rows_chunk(X: np.ndarray) -> np.ndarray:
    return X.T @ X


def _op_eval_chunk(X: np.ndarray, op: Any) -> np.ndarray:
    """``Σ_rows S(x^{⊗l})`` for an operator ``S`` with ``evaluate`` (dense, ``S_a``, ``G``)."""
    return np.sum(op.evaluate(X))


# -- the target operator ----------------------------------------------------
@dataclass(frozen=True)
class MomentOp:
    """The moment of shared samples as a target operator; ``norms (B,)`` carries the batch axis.

    ``contract`` takes rows of any array library, computes in float64 NumPy
    (the samples are NumPy or Dask) and returns them in the caller's library,
    dtype and device.
    """

    samples: Samples
    norms: Array
    order: int

    def contract(self, X: Array) -> Array:
        xp = array_namespace(X)
        Y = to_numpy(X).astype(np.float64, copy=False)
        flat = np.ascontiguousarray(Y.reshape(-1, Y.shape[-1]))
        out = self.samples.map_reduce(_contract_chunk, flat, self.order) / self.samples.n
        return xp.asarray(out.reshape(Y.shape), dtype=X.dtype, device=array_device(X))

    def norm_sq(self) -> Array:
        return self.norms

    def evaluate(self, X: Array) -> Array:
        return row_dot(self.contract(X), X)


# -- the user's tensor --------------------------------------------------------
class MomentTensor(TermAlgebra):
    """The empirical moment ``(1/n) Σ_k y_k^{⊗l}`` of rows ``y_k = x_k A + c`` (``A = I, c = 0`` by default).

    Build it with :func:`moment_tensor`; :meth:`transformed` whitens it.

    Attributes
    ----------
    order, dim : ``l`` and ``k``
    samples : the :class:`Samples` (shared, not copied)
    norm_route : ``"gram"`` or ``"dense"`` once ``‖T‖²`` has been computed, else None
    """

    def __init__(self, samples: Samples, order: int, raw_stats: tuple[np.ndarray, np.ndarray | None]) -> None:
        self.samples = samples
        self.order = check_order(order)
        self._raw_stats = raw_stats  # (E[x], E[x xᵀ] or None) of the unmapped rows
        self.norm_route: str | None = None

    @property
    def dim(self) -> int:
        return self.samples.dim

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dim,) * self.order

    @property
    def n_samples(self) -> int:
        return self.samples.n

    def __repr__(self) -> str:
        kind = "dask" if self.samples.is_dask else type(self.samples.data).__name__
        return f"MomentTensor(samples={self.n_samples}, dim={self.dim}, order={self.order}, data={kind})"

    # -- statistics from the construction pass ----------------------------------
    @property
    def mean(self) -> np.ndarray:
        """``E[y]``, ``(k,)``, from the chunked pass made at construction (no new pass)."""
        mu = self._raw_stats[0]
        A, c = self.samples.A, self.samples.c
        out = mu if A is None else mu @ A
        return out if c is None else out + c

    @property
    def second_moment(self) -> np.ndarray:
        """``E[y yᵀ]``, ``(k, k)``, from the construction pass: ``Aᵀ M2 A + Aᵀμ cᵀ + c μᵀA + c cᵀ``.

        Past ``d = STATS_MAX_DIM`` (a ``d × d`` accumulator over 32 MB) it takes a pass of its own.
        """
        mu, M2 = self._raw_stats
        if M2 is None:  # d above STATS_MAX_DIM: not accumulated at construction; one pass of the mapped rows
            return self.samples.map_reduce(_gram_rows_chunk) / self.n_samples
        A, c = self.samples.A, self.samples.c
        out = M2 if A is None else A.T @ M2 @ A
        if c is not None:
            mA = mu if A is None else mu @ A
            out = out + np.outer(mA, c) + np.outer(c, mA) + np.outer(c, c)
        return out

    # -- norms --------------------------------------------------------------------
    def route_costs(self) -> dict[str, float]:
        """Flop-equivalents of the two exact routes to ``‖T‖²`` (``c`` = ``ELEMENTWISE_FLOPS``).

        ``gram``: ``n² (2k + c l)`` (products, then ``l`` passes per pair);
        ``dense``: ``n p (2k + c (l - 2))`` for the ``p = C(k + l - 2, l - 1)`` distinct entries of
        ``x^{⊗(l-1)}`` (products, then building those rows), inf past the dense limit on ``k p``.
        """
        n, k, l = self.n_samples, self.dim, self.order
        p = math.comb(k + l - 2, l - 1)
        dense = float(n) * p * (2 * k + ELEMENTWISE_FLOPS * (l - 2)) if k * p <= MAX_DENSE_ENTRIES else float("inf")
        return {"gram": float(n) * n * (2 * k + ELEMENTWISE_FLOPS * l), "dense": dense}

    def norm_sq(self, route: str | None = None) -> float:
        """``‖T‖²_F`` exactly, by the cheaper route (or the one named); sets :attr:`norm_route`.

        ``gram``: ``(1/n²) Σ_{k,k'} <y_k, y_k'>^l`` in blocks, ``O(n² k)`` flops, 512 KB at a time.
        ``dense``: the dense moment's distinct columns ``(1/n) Σ_k y_k ⊗ y_k^{⊗(l-1)}`` (index
        tuples ``j_1 <= … <= j_{l-1}``, each squared entry counted with its multiplicity) as one
        product per chunk, ``O(n k^l / (l-1)!)`` flops and ``k^l / (l-1)!`` memory.
        """
        costs = self.route_costs()
        route = min(costs, key=costs.__getitem__) if route is None else route
        if route not in costs:
            raise OvertensorError(f"unknown norm route {route!r}; expected 'gram' or 'dense'")
        cached = self.__dict__.setdefault("_norms", {})
        if route not in cached:
            if route == "dense":
                mult = _unique_rows(self.dim, self.order)[1]
                M = self.samples.map_reduce(_unique_dense_chunk, self.order) / self.n_samples
                cached[route] = float(np.sum(M**2, axis=0) @ mult)
            else:
                cached[route] = _cross_gram(self.samples, self.samples, self.order) / self.n_samples**2
        self.norm_route = route
        return cached[route]

    def norm(self) -> float:
        return float(np.sqrt(max(self.norm_sq(), 0.0)))

    def _dense_flat(self) -> np.ndarray:
        check_dense_size(self.dim, self.order)
        return self.samples.map_reduce(_dense_chunk, self.order) / self.n_samples

    def to_dense(self) -> np.ndarray:
        """The ``(k,)*l`` moment from one chunked pass; refuses when it would be too large."""
        return self._dense_flat().reshape(self.shape)

    # -- contractions ---------------------------------------------------------------
    @cached_property
    def op(self) -> MomentOp:
        """The target operator (one run); :func:`~overtensor.solvers.problem.make_problem` batches it."""
        return MomentOp(self.samples, np.array([self.norm_sq()]), self.order)

    def contract(self, X: object) -> np.ndarray:
        """``T(x^{⊗(l-1)}, ·)`` for one point ``(k,)`` or rows ``(m, k)``: one pass."""
        return at_points(X, self.dim, MomentOp(self.samples, np.zeros(1), self.order).contract)

    def evaluate(self, X: object) -> np.ndarray:
        """``T(x^{⊗l})`` for one point ``(k,)`` (a 0-d array) or rows ``(m, k)`` (``(m,)``)."""
        return at_points(X, self.dim, lambda rows: row_dot(self.contract(rows), rows))

    def inner(self, other: Any) -> float:
        """``<T, other>`` with any target of the same shape: one pass over the samples.

        A SymCP: ``Σ λ_k T(v_k^{⊗l})``; another moment: the cross Gram (``‖T‖²``
        for the same samples); a dense tensor, ``S_a`` or ``G``: ``(1/n) Σ_k S(y_k^{⊗l})``.
        """
        from .corrections import TensorSum, inner
        from .symcp import SymCP

        if getattr(other, "order", None) != self.order or getattr(other, "dim", None) != self.dim:
            raise OvertensorError(f"tensors differ in shape: {self!r} vs {other!r}")
        if isinstance(other, (SymCP, TensorSum)):
            return inner(other, self)
        if isinstance(other, MomentTensor):
            if other.samples is self.samples:
                return self.norm_sq()
            return _cross_gram(self.samples, other.samples, self.order) / (self.n_samples * other.n_samples)
        return float(self.samples.map_reduce(_op_eval_chunk, other.op)) / self.n_samples

    def transformed(self, W: object, center: object = None) -> MomentTensor:
        """``T(W ·, …, W ·)`` for ``W (k, k')``: the moment of ``(y - center) W``, same pass per step.

        With ``center = mean`` and ``W = U Λ^{-1/2}`` from the covariance this is
        the whitened moment of DESIGN.md §8.
        """
        A = np.array(W, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != self.dim or not np.all(np.isfinite(A)):
            raise OvertensorError(f"W must be a finite ({self.dim}, k) array, got shape {A.shape}")
        c = None
        if center is not None:
            mu = np.array(center, dtype=np.float64)
            if mu.shape != (self.dim,) or not np.all(np.isfinite(mu)):
                raise OvertensorError(f"center must be a finite ({self.dim},) array, got shape {mu.shape}")
            c = -mu @ A
        return MomentTensor(self.samples.mapped(A, c), self.order, self._raw_stats)


def _cross_gram(a: Samples, b: Samples, order: int) -> float:
    """``Σ_{x ∈ a, y ∈ b} <x, y>^l``: for each chunk of ``a``, one pass over ``b``."""
    return float(sum(float(b.map_reduce(_gram_chunk, A, order)) for A in a.chunks()))


# -- construction and checks --------------------------------------------------
def _open(samples: object) -> Any:
    """The samples as an array-like with ``shape``/``dtype``: a path is memory-mapped."""
    if isinstance(samples, (str, os.PathLike)):
        try:
            return np.load(samples, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise OvertensorError(f"cannot read samples from {os.fspath(samples)!r}: {exc}") from None
    if isinstance(samples, np.ndarray) or _is_dask(samples):
        return samples
    try:
        return np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise OvertensorError(f"samples must be a real (n, d) array: {exc}") from None


def _check_dtype(data: Any) -> Any:
    kind = np.dtype(data.dtype).kind
    if kind in _ACCEPTED_KINDS:
        return data
    if kind == "O" and isinstance(data, np.ndarray):
        try:
            return np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError):
            pass
    raise OvertensorError(f"samples must be float or integer numbers, got dtype {data.dtype}")


def moment_tensor(samples: object, order: int, *, chunk_size: int | None = None) -> MomentTensor:
    """The empirical moment ``(1/n) Σ_k x_k^{⊗l}`` of samples ``X (n, d)``, kept implicit.

    One chunked pass checks every entry is finite and records ``E[x]`` and
    ``E[x xᵀ]`` (:attr:`MomentTensor.mean`, :attr:`MomentTensor.second_moment`).

    Parameters
    ----------
    samples : (n, d) NumPy array, memmap (``np.load(path, mmap_mode="r")``), ``dask.array``,
        or the path of a 2-D ``.npy`` file (memory-mapped)
    order : int, ``l >= 2``
    chunk_size : rows per chunk, default 4096 (a dask.array keeps its row blocks
        unless given)

    Raises
    ------
    OvertensorError
        For a non-2-D array, fewer than 2 samples, a dtype that is not float or
        integer, a NaN or Inf entry, or a chunk size below 1.

    Examples
    --------
    >>> import numpy as np
    >>> import overtensor as ot
    >>> X = np.random.default_rng(0).standard_normal((1000, 4))
    >>> M = ot.moment_tensor(X, 3, chunk_size=256)         # nothing of size d^l or n x n is formed
    >>> M.shape, M.n_samples
    ((4, 4, 4), 1000)
    >>> dense = np.einsum("ni,nj,nk->ijk", X, X, X) / len(X)
    >>> np.allclose(M.to_dense(), dense), bool(np.isclose(M.norm(), np.linalg.norm(dense)))
    (True, True)
    >>> x = np.array([1.0, 0.0, 0.0, 0.0])
    >>> bool(np.isclose(M.evaluate(x), np.mean(X[:, 0] ** 3)))   # M(x, x, x): the mean of <x_k, x>^3
    True
    """
    order = check_order(order)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
                                   or chunk_size < 1):
        raise OvertensorError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    data = _open(samples)
    if len(data.shape) != 2:
        raise OvertensorError(f"samples must be a 2-d (n, d) array, got shape {tuple(data.shape)}")
    n, d = (int(s) for s in data.shape)
    if n < 2 or d < 1:
        raise OvertensorError(f"samples must hold at least 2 rows of dimension >= 1, got shape {(n, d)}")
    source = Samples(_check_dtype(data), None if chunk_size is None else int(chunk_size))
    bad, total, gram = source.map_reduce(_stats_chunk, d <= STATS_MAX_DIM)
    if bad:
        raise OvertensorError(f"samples have {int(bad)} non-finite (NaN or Inf) entries")
    return MomentTensor(source, order, (total / n, gram / n if d <= STATS_MAX_DIM else None))
