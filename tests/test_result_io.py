"""A DecompositionResult saves and loads whole, in a file overtensor never reads as a target."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import cli_runner

import overtensor as ot
from overtensor.cli import main


def test_result_round_trips_with_its_options_and_versions(tmp_path):
    target = ot.make_target(20, 3, 3, weights="geometric", seed=1)
    result = ot.decompose(target, 8, "beyond-lazy", seed=4, tol=1e-3, truth=target)
    assert result.options["seed"] == 4 and result.options["tol"] == 1e-3
    result.save(tmp_path / "r.npz")
    back = ot.DecompositionResult.load(tmp_path / "r.npz")
    np.testing.assert_array_equal(back.params, result.params)
    np.testing.assert_array_equal(back.model.weights, result.model.weights)
    np.testing.assert_array_equal(back.model.vectors, result.model.vectors)
    assert back.history.names == result.history.names
    for name in result.history.names:
        np.testing.assert_array_equal(back.history[name], result.history[name])
    assert (back.relative_error, back.steps, back.method) == (result.relative_error, result.steps, result.method)
    assert back.info["epochs"] == result.info["epochs"]  # nested records, through JSON exactly
    assert back.options["truth"] == repr(target)  # a tensor option is named, not stored
    assert back.info["saved"]["versions"]["numpy"] == np.__version__


def test_a_saved_result_is_not_a_target(tmp_path):
    target = ot.make_target(6, 2, 3, seed=0)
    ot.decompose(target, 3, max_steps=20).save(tmp_path / "r.npz")
    with pytest.raises(ot.OvertensorError, match="is a saved decomposition result, not a target"):
        ot.load(tmp_path / "r.npz")
    out = cli_runner().invoke(main, ["decompose", str(tmp_path / "r.npz"), "-m", "3"])
    assert out.exit_code == 1 and "is a saved decomposition result" in out.stderr
    ot.save(tmp_path / "t.npz", target)
    with pytest.raises(ot.OvertensorError, match="is not a saved overtensor result"):
        ot.DecompositionResult.load(tmp_path / "t.npz")
    with pytest.raises(ot.OvertensorError, match=r"saved as \.npz"):
        ot.decompose(target, 3, max_steps=5).save(tmp_path / "r.json")
