"""gd from a warm start: init= a SymCP or an (m, d) array."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import residual_floor

import overtensor as ot


def test_continuing_from_params_is_one_longer_run_bit_for_bit():
    # the step size comes from the target, the arithmetic of each step from W alone: 100 + 50 steps
    # from the first run's end point are the 150 steps of one run
    t = ot.make_target(20, 3, 3, kind="gaussian", seed=1)
    first = ot.decompose(t, 8, seed=3, max_steps=100, tol=0.0)
    more = ot.decompose(t, 8, seed=3, max_steps=50, tol=0.0, init=first.params)
    whole = ot.decompose(t, 8, seed=3, max_steps=150, tol=0.0)
    np.testing.assert_array_equal(more.params, whole.params)
    assert more.info["warm_start"] and not whole.info["warm_start"]


@pytest.mark.parametrize("parameterization", ["balanced", "plain"])
def test_a_symcp_init_starts_at_that_tensor(parameterization):
    t = ot.make_target(15, 3, 3, kind="gaussian", weights=[1.0, 0.5, 0.2], seed=0)
    res = ot.decompose(t, 3, init=t, parameterization=parameterization, tol=1e-6)
    # T(W_0) = T*: the first check reads the error formula's floor (2m + r + d = 24 terms)
    assert res.steps == 0 and res.converged
    assert res.relative_error <= residual_floor(0.0, 24)
    # odd order: a negative weight is a flipped vector, still the same tensor
    flipped = ot.SymCP(-t.weights, t.vectors, 3)
    back = ot.decompose(flipped, 3, init=flipped, tol=1e-6)
    assert back.steps == 0 and back.relative_error <= residual_floor(0.0, 24)


def test_bad_warm_starts_are_one_line():
    t = ot.make_target(6, 2, 4, seed=0)
    with pytest.raises(ot.OvertensorError, match=r"init gives 2 components of dim 6; the run has m = 3, d = 6"):
        ot.decompose(t, 3, init=t)
    with pytest.raises(ot.OvertensorError, match="negative weights at even order"):
        ot.decompose(t, 2, init=ot.SymCP([1.0, -1.0], t.vectors, 4))
    with pytest.raises(ot.OvertensorError, match="init and init_scale exclude each other"):
        ot.decompose(t, 2, init=t, init_scale=0.1)
    with pytest.raises(ot.OvertensorError, match=r"init must be a finite \(m, d\) array, got shape \(6,\)"):
        ot.decompose(t, 2, init=np.ones(6))
    with pytest.raises(ot.OvertensorError, match="init has order 3"):
        ot.decompose(t, 2, init=ot.make_target(6, 2, 3, seed=0))
