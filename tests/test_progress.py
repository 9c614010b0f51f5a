"""Progress: a bar on a terminal, a log line every few seconds elsewhere, progress=True in the API."""

from __future__ import annotations

import io
import logging
import math

from conftest import cli_runner

import overtensor as ot
from overtensor import progress as progress_module
from overtensor.cli import main
from overtensor.progress import Progress, step_budget


def test_step_budgets_are_the_methods_own():
    assert step_budget("gd", {}) == 10_000 and step_budget("lazy-gd", {"max_steps": 7}) == 7
    # beyond-lazy: epochs of ceil(H0 γ^k) steps; defaults H0 = 100, γ = 1.25, 20 epochs
    assert step_budget("beyond_lazy", {}) == sum(math.ceil(100 * 1.25**k) for k in range(20))
    assert step_budget("beyond-lazy", {"epoch_steps": 10, "epoch_growth": 2.0, "max_epochs": 3}) == 70
    assert step_budget("power", {}) is None


def test_off_a_terminal_progress_is_log_lines(caplog):
    caplog.set_level(logging.INFO, logger="overtensor")
    p = Progress(100, "gd", stream=io.StringIO(), every=0.0)  # a StringIO is no terminal
    p(10)
    p(30)
    p.close()
    assert p.bar is None and p.steps == 40
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("gd: 10 of 100 steps (10%), ") and lines[1].startswith("gd: 40 of 100 steps (40%)")
    resumed = Progress(8, "e1", unit="run", initial=3, stream=io.StringIO(), every=0.0)
    resumed(2)
    assert caplog.records[-1].getMessage().startswith("e1: 5 of 8 runs (62%), ")


def test_api_progress_true_reports_every_step_taken(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="overtensor")
    monkeypatch.setattr(progress_module, "LOG_EVERY", 0.0)
    t = ot.make_target(10, 2, 3, seed=0)
    res = ot.decompose(t, 5, seed=0, tol=0.0, max_steps=40, record_every=10, progress=True)
    assert caplog.records[-1].getMessage().startswith("gd: 40 of 40 steps (100%)")
    assert res.steps == 40 and "progress" not in res.options


def test_the_cli_logs_progress_when_stderr_is_no_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(progress_module, "LOG_EVERY", 0.0)
    monkeypatch.chdir(tmp_path)
    ot.save(tmp_path / "t.npz", ot.make_target(10, 2, 3, seed=0))
    out = cli_runner().invoke(main, ["decompose", "t.npz", "-m", "5", "--tol", "0", "--max-steps", "30"])
    assert out.exit_code == 0, out.stderr
    assert "gd: 30 of 30 steps (100%)" in out.stderr


def test_log_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("OVERTENSOR_LOG_EVERY", "60")
    assert progress_module._log_every() == 60.0
    for bad in ("soon", "0", "-1"):  # not a positive number: the default
        monkeypatch.setenv("OVERTENSOR_LOG_EVERY", bad)
        assert progress_module._log_every() == 5.0
