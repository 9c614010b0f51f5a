"""Experiment machinery: specs, resumable sweeps (local pool and Dask), results export, report.

The CLI runs in-process through click's ``CliRunner``; the Ctrl-C and SIGKILL
tests start it as a real process. Every stored metric is checked against an
independent in-process ``overtensor.decompose`` of the same run.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import Result
from conftest import cli_runner

import overtensor as ot
import overtensor.solvers
from overtensor.cli import main
from overtensor.experiments import figures, runner
from overtensor.experiments.spec import build_target, lazy_threshold, load_spec, parse_spec, target_seed
from overtensor.experiments.store import APPLICATION_ID, RunRecord, Store, compact_history

DATA = Path(__file__).parent / "data"
SPEC = DATA / "sweep_gd.yaml"
SLOW = DATA / "sweep_slow.yaml"  # 4 quick runs, then 4 that take minutes
SHIPPED = Path(__file__).parent.parent / "experiments"
TOTAL = 24  # 2 dims x 3 m x 4 seeds


def cli(*args: str, cwd: Path) -> Result:
    """The CLI in-process, in folder ``cwd``; an unexpected exception propagates with its traceback."""
    handler = signal.getsignal(signal.SIGINT)  # sweep keeps its Ctrl-C handler until the process exits
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return cli_runner().invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)
        signal.signal(signal.SIGINT, handler)


def one_line_error(out: Result, start: str) -> None:
    """Exit status 1 and exactly one line on stderr, starting with ``Error: start``."""
    assert out.exit_code == 1, out.stderr
    assert out.stderr.startswith("Error: " + start), out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr


def start(*args: str, cwd: Path) -> subprocess.Popen:
    """A sweep in its own process group, so that signals reach it and its workers as from a terminal."""
    return subprocess.Popen([sys.executable, "-m", "overtensor.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def stored(db: Path) -> dict[tuple[str, int], tuple]:
    """(key, seed) -> (relative_error, converged, steps, status); asserts no (key, seed) appears twice."""
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT key, seed, relative_error, converged, steps, status FROM runs").fetchall()
    out = {(k, s): tuple(rest) for k, s, *rest in rows}
    assert len(out) == len(rows)
    return out


def count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


def wait_for_rows(db: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while count(db) < n:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference() -> dict[tuple[str, int], tuple]:
    """Every run of the test spec computed in-process, one ``decompose`` call per run."""
    out = {}
    for run in load_spec(SPEC).expand():
        c = run.config
        res = ot.decompose(build_target(c, run.seed), c.components, c.method, seed=run.seed, **c.options)
        out[(run.key, run.seed)] = (res.relative_error, int(res.converged), res.steps, "ok")
    return out


def assert_same(rows: dict, reference: dict, rtol: float = 0.0) -> None:
    assert rows.keys() == reference.keys()
    for key, (err, conv, steps, status) in rows.items():
        ref = reference[key]
        assert (conv, steps, status) == ref[1:], key
        assert err == pytest.approx(ref[0], rel=rtol, abs=1e-300), key


# ----------------------------------------------------------------------------- specs


def test_expansion_and_component_rules():
    spec = parse_spec(yaml.safe_load("""
name: t
experiment: e1
seeds: [3, 5]
runs:
  - target: {dim: [10, 20], rank: 1, order: [3, 4]}
    method: gd
    options: {max_steps: [10, 20]}
    components: {times_threshold: [0.5, 1.0]}
  - target: {dim: 7, rank: 3}
    method: gd
    components: {times_rank: 2.5}
    seeds: 1
    label: gd m=2.5r
"""))
    runs = spec.expand()
    assert len(runs) == 2 * 2 * 2 * 2 * 2 + 1
    first = runs[:32]
    # m = round(x C(d+l-1, l)/d), checked against the binomial formula written out
    for r in first:
        d, l = r.config.target.dim, r.config.target.order
        threshold = math.factorial(d + l - 1) / (math.factorial(l) * math.factorial(d - 1)) / d
        assert r.config.components in {round(0.5 * threshold), round(threshold)}
    # C(23, 4) = 8855, threshold 442.75
    assert {r.config.components for r in first if (r.config.target.dim, r.config.target.order) == (20, 4)} == {
        221, 443}
    assert lazy_threshold(20, 4) == pytest.approx(8855 / 20)
    assert [r.seed for r in first[:2]] == [3, 5]
    assert len({r.key for r in first}) == 16  # seeds share the key, configs do not
    last = runs[-1]
    assert (last.config.components, last.seed, last.config.label) == (round(2.5 * 3), 0, "gd m=2.5r")


def test_target_and_init_streams_are_independent():
    spec = parse_spec({"name": "t", "experiment": "x", "runs": [
        {"target": {"dim": 8, "rank": 1}, "method": "gd", "components": 1},
        {"target": {"dim": 8, "rank": 1, "seed": 11}, "method": "gd", "components": 1}]})
    free, fixed = spec.expand()
    # rank 1 from default_rng(seed) would equal the first initial direction of default_rng(seed)
    a = build_target(free.config, 0).vectors[0]
    g = np.random.default_rng(0).standard_normal(8)
    assert abs(a @ g) / np.linalg.norm(g) < 0.9
    assert target_seed(free.config, 0) != target_seed(free.config, 1)
    assert target_seed(fixed.config, 0) == target_seed(fixed.config, 1) == 11


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(colour="red"), "spec bad.yaml: unknown field 'colour'; expected one of name, "),
    (lambda s: s["runs"][0]["target"].update(dim="ten"), "spec bad.yaml: runs[0].target.dim: got 'ten'; "),
    (lambda s: s["runs"][0]["target"].update(dim=-3), "spec bad.yaml: runs[0].target.dim: -3 is not >= 1"),
    (lambda s: s["runs"][0].update(method="lazzy"), "spec bad.yaml: runs[0].method: unknown method 'lazzy'"),
    (lambda s: s["runs"][0]["options"].update(alpha=2),
     "spec bad.yaml: runs[0].options: unknown option 'alpha' for method 'gd'; expected one of tol, step_size, "),
    (lambda s: s["runs"][0]["options"].update(tol="abc"),
     "spec bad.yaml: runs[0].options: tol of method 'gd' must be a number, got 'abc'"),
    (lambda s: s["runs"][0]["options"].update(step_size="big"),
     "spec bad.yaml: runs[0].options: step_size of method 'gd' must be a number, got 'big'"),
    (lambda s: s["runs"][0]["options"].update(max_steps=-5),
     "spec bad.yaml: runs[0].options: max_steps of method 'gd' must be an integer >= 0, got -5"),
    (lambda s: s["runs"][0].update(method="beyond-lazy", options={"max_steps": 5}),
     "spec bad.yaml: runs[0].options: unknown option 'max_steps' for method 'beyond_lazy'; expected one of "),
    (lambda s: s["runs"][0].update(method="beyond_lazy", options={"recycle": "yes"}),
     "spec bad.yaml: runs[0].options: recycle of method 'beyond_lazy' must be true or false, got 'yes'"),
    (lambda s: s["runs"][0].update(method="beyond_lazy", options={"merge_cos": 1.5}),
     "spec bad.yaml: runs[0].options: merge_cos of method 'beyond_lazy' must be a finite number > 0 and <= 1, "
     "got 1.5"),
    (lambda s: s["runs"][0].update(method="power", options={"n_starts": 2.5}),
     "spec bad.yaml: runs[0].options: n_starts of method 'power' must be an integer, got 2.5"),
    (lambda s: s["runs"][0].update(method="lazy", options={"cg_tol": 0}),
     "spec bad.yaml: runs[0].options: cg_tol of method 'lazy' must be a finite number > 0 and < 1, got 0"),
    (lambda s: s["runs"][0].update(method="gd", options={"init": 0}),
     "spec bad.yaml: runs[0].options.init: not an option a spec can set (method 'gd')"),
    (lambda s: s["runs"][0].update(components=[]), "spec bad.yaml: runs[0].components: got []"),
    (lambda s: s["runs"][0]["target"].update(dim=[]), "spec bad.yaml: runs[0].target.dim: got []"),
])
def test_bad_spec_is_one_line_error_and_no_store(tmp_path: Path, edit, message):
    spec = yaml.safe_load(SPEC.read_text())
    edit(spec)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(spec))
    one_line_error(cli("sweep", "bad.yaml", "--store", "runs.db", cwd=tmp_path), message)
    assert not list(tmp_path.glob("runs.db*"))


@pytest.mark.parametrize("method, options", [
    ("gd", {"max_steps": -5}), ("gd", {"tol": -1.0}), ("gd", {"step_size": 0.0}), ("gd", {"record_every": 0}),
    ("gd", {"parameterization": "odd"}), ("lazy", {"cg_tol": 2.0}), ("lazy_gd", {"alpha": -1.0}),
    ("power", {"n_starts": 0}), ("als", {"als_init": "best"}), ("beyond_lazy", {"epoch_growth": 0.5}),
])
def test_option_values_are_checked_at_load_as_the_api_checks_them(method, options):
    """The load-time message is the one the API raises when it runs: both validate through the method's model."""
    with pytest.raises(ot.OvertensorError) as solved:
        ot.decompose(ot.make_target(5, 1, 3, seed=0), 2, method, **options)
    with pytest.raises(ot.OvertensorError) as loaded:
        parse_spec({"name": "t", "experiment": "x", "runs": [
            {"target": {"dim": 5, "rank": 1}, "method": method, "options": options, "components": 2}]})
    assert str(loaded.value) == f"spec <spec>: runs[0].options: {solved.value}"


@pytest.mark.skipif(not hasattr(ot, "polish"), reason="this build has no overtensor.polish")
def test_polish_values_are_checked_at_load_as_polish_checks_them():
    t = ot.make_target(5, 1, 3, seed=0)
    with pytest.raises(ot.OvertensorError) as polished:
        ot.polish(t, t, max_steps=-1)
    block = {"target": {"dim": 5, "rank": 1}, "method": "gd", "components": 2, "polish": {"max_steps": -1}}
    with pytest.raises(ot.OvertensorError) as loaded:
        parse_spec({"name": "t", "experiment": "x", "runs": [block]})
    assert str(loaded.value) == f"spec <spec>: runs[0].polish: {polished.value}"
    block["polish"] = {"max_steps": "abc"}
    with pytest.raises(ot.OvertensorError, match=r"runs\[0\].polish: max_steps of method 'polish' must be an "
                                                 r"integer, got 'abc'$"):
        parse_spec({"name": "t", "experiment": "x", "runs": [block]})


def test_yaml_1_1_number_strings_are_the_numbers_meant():
    text = "{tol: 1e-3, max_steps: 2e2, step_size: 5E-1}"
    assert yaml.safe_load(text) == {"tol": "1e-3", "max_steps": "2e2", "step_size": "5E-1"}  # PyYAML: strings
    (run,) = parse_spec({"name": "t", "experiment": "x", "runs": [
        {"target": {"dim": 5, "rank": 1}, "method": "gd", "options": yaml.safe_load(text),
         "components": 2}]}).expand()
    assert run.config.options == {"tol": 0.001, "max_steps": 200, "step_size": 0.5}
    assert type(run.config.options["max_steps"]) is int and type(run.config.options["tol"]) is float


def test_shipped_specs_validate():
    """Every shipped spec validates, restricted to the methods this build has (all of them once merged)."""
    names = sorted(p.name for p in SHIPPED.glob("*.yaml"))
    assert names == sorted(f"e{i}_{s}{q}.yaml" for i, s in enumerate(
        ["lazy_threshold", "beyond_lazy", "phase_diagram", "rank_scaling", "dynamics", "final_convergence"], 1)
        for q in ("", "_quick"))
    checked = 0
    for path in SHIPPED.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        data["runs"] = [b for b in data["runs"] if b["method"] in ot.methods()]
        # features this build may lack before the merge: recovery, polish, methods' truth option
        if not hasattr(ot, "recover"):
            data["record"].pop("recovery", None)
            data["runs"] = [b for b in data["runs"] if "polish" not in b]
        if "truth" not in inspect.signature(ot.solvers.METHODS["gd"]).parameters:
            data["record"].pop("truth", None)
        if data["runs"]:
            spec = parse_spec(data, source=path.name)
            checked += len(spec.expand())
            assert spec.experiment == path.name[:2]
    assert checked > 0


# ----------------------------------------------------------------------------- sweeps


def test_sigkill_then_resume_loses_and_repeats_nothing(tmp_path: Path, reference):
    db = tmp_path / "runs.db"
    args = ("sweep", str(SPEC), "--store", "runs.db", "--workers", "2", "--max-batch", "1")
    proc = start(*args, cwd=tmp_path)
    wait_for_rows(db, 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = stored(db)
    assert 3 <= len(partial) < TOTAL  # killed mid-way
    done = cli(*args, cwd=tmp_path)
    assert done.exit_code == 0, done.stderr
    assert f"{TOTAL} of {TOTAL} runs" in done.stderr and f"({TOTAL - len(partial)} new" in done.stderr
    rows = stored(db)
    assert len(rows) == TOTAL
    assert {k: rows[k] for k in partial} == partial  # nothing rewritten
    assert_same(rows, reference)  # each run singly, as decompose: bitwise equal
    again = cli(*args, cwd=tmp_path)  # nothing left to do
    assert again.exit_code == 0 and "(0 new" in again.stderr and count(db) == TOTAL


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_keeps_finished_runs_stops_the_workers_and_exits_130(tmp_path: Path):
    db = tmp_path / "runs.db"
    proc = start("sweep", str(SLOW), "--store", "runs.db", "--workers", "2", "--max-batch", "1", cwd=tmp_path)
    try:
        wait_for_rows(db, 1, proc)  # started; the 4 slow runs take minutes, so it cannot have finished
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        n = count(db)
        assert 1 <= n <= 4 and err == f"interrupted: {n} of 8 runs done ({n} in this sweep), kept in runs.db; " \
            "run the same command to resume\n"
        deadline = time.monotonic() + 30  # the workers are stopped, not left running the slow runs
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not group_alive(proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


class _Gated:
    """An executor whose tasks after the first ``n`` wait until ``release`` is set.

    So that a stop requested after ``n`` tasks lands before any later task can
    finish, however fast the tasks are (the sweep rightly stores every task that
    finished before it noticed the stop).
    """

    def __init__(self, pool: ThreadPoolExecutor, n: int, release: threading.Event) -> None:
        self.pool, self.n, self.release, self.submitted = pool, n, release, 0

    def submit(self, fn, *args, **kwargs):
        self.submitted += 1
        if self.submitted <= self.n:
            return self.pool.submit(fn, *args, **kwargs)
        return self.pool.submit(self._later, fn, *args, **kwargs)

    def _later(self, fn, *args, **kwargs):
        self.release.wait()
        return fn(*args, **kwargs)


def sweep_in_process(spec, db: Path, *, workers: int = 1, max_batch: int = 32, stop_after: int | None = None):
    """``runner.sweep`` on one thread; with ``stop_after``, stopped (as by Ctrl-C) once that many tasks are in."""
    stop, release, tasks = threading.Event(), threading.Event(), []

    def progress(n: int) -> None:
        tasks.append(n)
        if stop_after is not None and len(tasks) >= stop_after:
            stop.set()

    with Store(db, create=True) as store, ThreadPoolExecutor(1) as pool:
        executor = pool if stop_after is None else _Gated(pool, stop_after, release)
        try:
            runner.sweep(spec, store, executor, workers=workers, max_batch=max_batch, progress=progress, stop=stop)
        except KeyboardInterrupt:
            release.set()
            pool.shutdown(cancel_futures=True)
            return False
    return True


def numbers(db: Path) -> dict[tuple[str, int], tuple]:
    """Everything a row holds that does not depend on the clock."""
    with Store(db) as store:
        return {(r.key, r.seed): (r.relative_error, r.converged, r.steps, r.batch,
                                  {k: v for k, v in r.metrics.items() if k != "seconds"},
                                  {k: v for k, v in r.history.items() if k != "seconds"})
                for r in store.records()}


def test_interrupted_and_resumed_sweep_stores_what_an_uninterrupted_one_does(tmp_path: Path):
    # one config, 8 seeds, 2 workers: chunks of ceil(8 / 2) = 4 seeds, whatever is already stored
    spec = parse_spec({"name": "r", "experiment": "x", "seeds": 8, "record": {"history_rows": 10}, "runs": [
        {"target": {"dim": 6, "rank": 2}, "method": "gd", "options": {"max_steps": 200, "tol": 1e-3},
         "components": 4}]})
    assert sweep_in_process(spec, tmp_path / "whole.db", workers=2)
    assert not sweep_in_process(spec, tmp_path / "cut.db", workers=2, stop_after=1)
    assert count(tmp_path / "cut.db") == 4
    with Store(tmp_path / "cut.db") as store:  # the rest is still the second chunk
        assert [t.seeds for t in runner.plan(spec, store.done(), workers=2)] == [(4, 5, 6, 7)]
    assert sweep_in_process(spec, tmp_path / "cut.db", workers=2)
    whole = numbers(tmp_path / "whole.db")
    assert numbers(tmp_path / "cut.db") == whole  # exactly, batch sizes included
    assert {row[3] for row in whole.values()} == {4}


@pytest.fixture(scope="module")
def local_store(tmp_path_factory) -> Path:
    """The test spec swept on the local pool with the default batching (seeds grouped)."""
    tmp = tmp_path_factory.mktemp("local")
    out = cli("sweep", str(SPEC), "--store", "runs.db", "--workers", "2", cwd=tmp)
    assert out.exit_code == 0, out.stderr
    return tmp / "runs.db"


def test_load_results_gives_pandas_tables_of_the_runs_and_their_histories(local_store: Path):
    from overtensor.experiments import load_results, tidy

    table = load_results(local_store)
    with Store(local_store) as store:
        records = list(store.records())
        rows = tidy(store.records(history=False))
    assert len(table) == len(records) and list(table.columns) == list(rows[0])
    assert table.relative_error.tolist() == [r.relative_error for r in records]
    long = load_results(local_store, history=True)
    assert len(long) == sum(len(r.history["step"]) for r in records)
    first = long[(long.key == records[0].key) & (long.seed == records[0].seed)]
    assert first.step.tolist() == records[0].history["step"]
    assert first.relative_error.tolist() == records[0].history["relative_error"]


def test_batched_sweep_matches_single_runs(local_store: Path, reference):
    with Store(local_store) as store:
        batches = {r.batch for r in store.records()}
    assert batches == {4}  # the 4 seeds of each config solved by one decompose_batch call
    # a batched run equals its single run bit for bit (tests/test_gd.py)
    assert_same(stored(local_store), reference)


@contextlib.contextmanager
def loopback_cluster():
    """A one-worker Dask cluster in this process, listening on 127.0.0.1 only, no dashboard."""
    from distributed import LocalCluster

    # loopback only, the dashboard on a free port (None still serves it, on 127.0.0.1:8787)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0") as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        yield cluster


def test_dask_cluster_gives_the_local_rows(tmp_path: Path, local_store: Path):
    with loopback_cluster() as cluster:
        out = cli("sweep", str(SPEC), "--store", "runs.db", "--scheduler", cluster.scheduler_address, cwd=tmp_path)
    assert out.exit_code == 0, out.stderr
    assert stored(tmp_path / "runs.db") == stored(local_store)  # bit for bit


class FailingExecutor:
    """Runs the first task; every later one fails with ``error`` (a lost worker, or a bug in the task)."""

    def __init__(self, error: BaseException) -> None:
        self.error, self.calls = error, 0

    def submit(self, fn, *args):
        from concurrent.futures import Future

        future: Future = Future()
        self.calls += 1
        if self.calls == 1:
            future.set_result(fn(*args))
        else:
            future.set_exception(self.error)
        return future


def test_lost_workers_keep_the_finished_runs_and_a_bug_keeps_its_traceback(tmp_path: Path):
    from concurrent.futures.process import BrokenProcessPool

    spec = parse_spec(tiny_spec(seeds=2))
    with Store(tmp_path / "r.db", create=True) as store:
        with pytest.raises(runner.WorkersLost, match=r"^the workers stopped before a task finished "
                                                      r"\(BrokenProcessPool: gone\)$"):
            runner.sweep(spec, store, FailingExecutor(BrokenProcessPool("gone")), max_batch=1)
        assert len(store) == 1
    with Store(tmp_path / "s.db", create=True) as store, pytest.raises(TypeError, match="a bug"):
        runner.sweep(spec, store, FailingExecutor(TypeError("a bug")), max_batch=1)  # not a lost worker


def test_scheduler_that_is_not_an_address(tmp_path: Path):
    out = cli("sweep", str(SPEC), "--store", "runs.db", "--scheduler", "notanaddress", cwd=tmp_path)
    one_line_error(out, "cannot reach the Dask scheduler at notanaddress: missing port number")
    assert not list(tmp_path.glob("runs.db*"))


def test_scheduler_dying_mid_sweep_keeps_the_finished_runs_and_resumes(tmp_path: Path, monkeypatch, reference):
    args = ("sweep", str(SPEC), "--store", "runs.db", "--max-batch", "1")
    add = Store.add
    with loopback_cluster() as cluster:
        def add_then_close(self, records):  # the scheduler goes away once the first run is stored
            n = add(self, records)
            cluster.close()
            return n

        monkeypatch.setattr(Store, "add", add_then_close)
        out = cli(*args, "--scheduler", cluster.scheduler_address, cwd=tmp_path)
    n = count(tmp_path / "runs.db")
    one_line_error(out, "the workers stopped before a task finished (CancelledError); ")
    assert 1 <= n < TOTAL and f"; {n} of {TOTAL} runs done ({n} in this sweep), kept in runs.db; run the same " \
        "command to resume" in out.stderr
    monkeypatch.setattr(Store, "add", add)
    with loopback_cluster() as cluster:
        again = cli(*args, "--scheduler", cluster.scheduler_address, cwd=tmp_path)
    assert again.exit_code == 0 and f"{TOTAL} of {TOTAL} runs in runs.db ({TOTAL - n} new)" in again.stderr
    assert_same(stored(tmp_path / "runs.db"), reference)


def test_error_rows_are_stored_not_retried(tmp_path: Path):
    """A run whose method raises (here: diverges) is a finished run with status 'error'."""
    spec = parse_spec({"name": "div", "experiment": "x", "seeds": 2, "runs": [
        {"target": {"dim": 5, "rank": 1}, "method": "gd", "options": {"step_size": 50.0, "max_steps": 50},
         "components": 3}]})
    with Store(tmp_path / "r.db", create=True) as store, ThreadPoolExecutor(1) as pool:
        runner.sweep(spec, store, pool)
        (a, b) = list(store.records())
        assert a.status == b.status == "error" and "diverged" in a.error and a.relative_error is None
        assert runner.plan(spec, store.done()) == []


def tiny_spec(max_steps: int = 100, seeds: int = 2) -> dict:
    return {"name": "tiny", "experiment": "x", "seeds": seeds, "record": {"history": False}, "runs": [
        {"target": {"dim": 5, "rank": 1}, "method": "gd", "options": {"max_steps": max_steps}, "components": 2}]}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sqlite_file_that_is_not_a_store_is_refused_and_left_alone(tmp_path: Path):
    with sqlite3.connect(tmp_path / "notes.db") as con:
        con.execute("CREATE TABLE notes (text TEXT)")
        con.execute("INSERT INTO notes VALUES ('mine')")
    con.close()
    (tmp_path / "text.db").write_text("not a database\n")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(tiny_spec()))
    for name, why in (("notes.db", "an SQLite database with tables notes"), ("text.db", "file is not a database")):
        before = digest(tmp_path / name)
        for args in (("sweep", "spec.yaml", "--store", name), ("results", name)):
            one_line_error(cli(*args, cwd=tmp_path), f"{name} is not an overtensor result store: {why}")
        assert digest(tmp_path / name) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db", "spec.yaml", "text.db"]  # no -wal, -shm


def test_stores_are_marked_and_unmarked_old_stores_still_work(tmp_path: Path):
    db = tmp_path / "r.db"
    assert sweep_in_process(parse_spec(tiny_spec()), db)
    with sqlite3.connect(db) as con:  # the marker, read back by SQLite itself
        assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID == 0x4F765453
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
        con.execute("PRAGMA application_id = 0")  # as written before the marker existed
        con.execute("PRAGMA user_version = 0")
    con.close()
    rows = stored(db)
    with Store(db) as store:  # read as it is
        assert len(store) == 2
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA application_id").fetchone()[0] == 0
    con.close()
    assert sweep_in_process(parse_spec(tiny_spec(seeds=3)), db)  # a sweep marks it and adds to it
    assert stored(db).items() >= rows.items() and count(db) == 3
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        con.execute("PRAGMA user_version = 2")
    con.close()
    with pytest.raises(ot.OvertensorError, match="store format 2 was written by a newer overtensor"):
        Store(db)


def test_edited_spec_is_refused_naming_the_change_and_an_extended_one_runs(tmp_path: Path):
    assert sweep_in_process(parse_spec(tiny_spec(max_steps=100)), tmp_path / "r.db")
    rows = stored(tmp_path / "r.db")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(tiny_spec(max_steps=50)))
    out = cli("sweep", "spec.yaml", "--store", "r.db", "--workers", "1", cwd=tmp_path)
    one_line_error(out, "spec 'tiny' changed since it was swept into r.db (runs[0].options.max_steps): 2 of its 2 "
                        "stored runs are not in the edited spec; sweep into another store or give the edited spec "
                        "another name")
    assert stored(tmp_path / "r.db") == rows
    spec = tiny_spec(max_steps=100)
    spec["record"]["history"] = True
    with Store(tmp_path / "r.db", create=True) as store, pytest.raises(ot.OvertensorError, match=(
            r"\(record.history\): its 2 stored runs were recorded differently")):
        runner.check_unchanged(parse_spec(spec), store)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(tiny_spec(max_steps=100, seeds=3)))  # one more seed
    out = cli("sweep", "spec.yaml", "--store", "r.db", "--workers", "1", cwd=tmp_path)
    assert out.exit_code == 0 and out.stderr == "tiny: 3 of 3 runs in r.db (1 new)\n"
    assert stored(tmp_path / "r.db").items() >= rows.items()


# ----------------------------------------------------------------------------- results and report


def test_results_csv_json_and_parquet(tmp_path: Path, local_store: Path, reference):
    import csv

    out = cli("results", str(local_store), cwd=tmp_path)
    assert out.exit_code == 0, out.stderr
    table = list(csv.DictReader(out.stdout.splitlines()))
    assert len(table) == TOTAL
    assert {"dim", "rank", "order", "components", "seed", "opt_max_steps", "relative_error", "steps",
            "version_numpy"} <= set(table[0])
    out = cli("results", str(local_store), "--format", "json", "-o", "runs.json", cwd=tmp_path)
    assert out.exit_code == 0, out.stderr
    rows = json.loads((tmp_path / "runs.json").read_text())
    assert len(rows) == TOTAL
    by_key = {(r["key"], r["seed"]): r for r in rows}
    for key, (err, conv, steps, _) in reference.items():
        assert by_key[key]["steps"] == steps and by_key[key]["relative_error"] == pytest.approx(err, rel=1e-6)
    assert sum(float(r["relative_error"]) <= 1e-2 for r in table) == sum(r["converged"] for r in rows)
    out = cli("results", str(local_store), "--format", "parquet", "-o", "runs.parquet", cwd=tmp_path)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert out.exit_code == 1 and "pip install 'overtensor[parquet]'" in out.stderr
        assert out.stderr.count("\n") == 1 and not (tmp_path / "runs.parquet").exists()
    else:
        assert out.exit_code == 0 and pq.read_table(tmp_path / "runs.parquet").num_rows == TOTAL
    missing = cli("results", "nope.db", cwd=tmp_path)
    assert missing.exit_code == 1 and "no result store at nope.db" in missing.stderr
    assert not (tmp_path / "nope.db").exists()


def test_report_writes_figures_and_html(tmp_path: Path, local_store: Path):
    out = cli("report", str(local_store), "-o", "rep", cwd=tmp_path)
    assert out.exit_code == 0, out.stderr
    for stem in ("e2_success", "e2_needed_m"):
        assert (tmp_path / "rep" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / "rep" / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<table>" in page
    # the success-rate table behind the figure, recomputed from the store
    with Store(local_store) as store:
        runs = list(store.records())
    for d in (6, 10):
        for m in (2, 4, 8):
            group = [r for r in runs if r.config["target"]["dim"] == d and r.components == m]
            rate = sum(r.relative_error <= 1e-2 for r in group) / len(group)
            assert f"<td>gd</td><td>{d}</td><td>{m}</td><td>{rate:.4g}</td><td>4</td>" in page


def test_every_experiment_figure_draws(tmp_path: Path):
    """E1-E6 and the generic figure, on tiny gd runs tagged as each experiment."""
    blocks = {"e1": {"components": {"times_threshold": [0.5, 1.0]}, "target": {"dim": [4, 5], "rank": 1}},
              "e3": {"components": [1, 3], "target": {"dim": [4, 6], "rank": 1}},
              "e4": {"components": {"times_rank": [1, 3]}, "target": {"dim": 6, "rank": [1, 2]}},
              "e5": {"components": 3, "target": {"dim": [4, 8], "rank": 1}},
              "e6": {"components": {"times_rank": [1, 3]}, "target": {"dim": 5, "rank": 2}},
              "mine": {"components": [1, 2], "target": {"dim": 4, "rank": 1}}}
    with Store(tmp_path / "r.db", create=True) as store, ThreadPoolExecutor(1) as pool:
        for tag, block in blocks.items():
            spec = parse_spec({"name": tag, "experiment": tag, "seeds": 2, "runs": [
                {**block, "method": "gd", "options": {"max_steps": 200, "tol": 1e-3, "step_size": 0.3}}]})
            runner.sweep(spec, store, pool)
    out = cli("report", "r.db", "-o", "rep", cwd=tmp_path)
    assert out.exit_code == 0, out.stderr
    names = {p.name for p in (tmp_path / "rep").glob("*.png")}
    assert names == {"e1_lazy_threshold.png", "e1_measured_threshold.png", "e3_phase.png", "e4_scaling.png", "e4_exponents.png",
                     "e5_trajectory.png", "e5_steps_vs_d.png", "e6_error_vs_step.png",
                     "mine_error_vs_components.png"}


def test_polish_phase_continues_the_history(tmp_path: Path, monkeypatch):
    """``polish`` chains recover and polish after the method (stand-ins here: the real ones live elsewhere)."""
    def recover(model):
        return model

    def polish(model, target, *, max_steps: int = 10):
        return ot.decompose(target, model.rank, max_steps=max_steps, tol=0.0, record_every=5)

    monkeypatch.setattr(ot, "recover", recover, raising=False)
    monkeypatch.setattr(ot, "polish", polish, raising=False)
    data = {"name": "p", "experiment": "e6", "runs": [{"target": {"dim": 5, "rank": 1}, "method": "gd",
            "options": {"max_steps": 30, "record_every": 10, "tol": 0.0}, "components": 2,
            "polish": {"max_steps": 20}}]}
    (run,) = parse_spec(data).expand()
    (record,) = runner.execute(runner.Task("p", run.config, (run.seed,), parse_spec(data).record))
    h = record.history
    assert h["phase"] == [0] * 4 + [1] * 5 and h["step"] == [0, 10, 20, 30, 30, 35, 40, 45, 50]
    assert record.steps == 30 and record.metrics["polished_steps"] == 20
    assert record.metrics["polished_components"] == 2
    data["runs"][0]["polish"] = {"max_step": 20}
    with pytest.raises(ot.OvertensorError, match=r"runs\[0\].polish: unknown option 'max_step'"):
        parse_spec(data)


def test_unreadable_spec_is_one_line_error(tmp_path: Path):
    (tmp_path / "broken.yaml").write_text("name: x\nruns: [\n")
    for spec, message in (("broken.yaml", "spec broken.yaml: not valid YAML at line 3"),
                          ("absent.yaml", "spec absent.yaml: cannot read")):
        out = cli("sweep", spec, "--store", "runs.db", cwd=tmp_path)
        assert out.exit_code == 1 and out.stderr.startswith("Error: " + message), out.stderr
        assert out.stderr.count("\n") == 1
    assert not list(tmp_path.glob("runs.db*"))


def fake_run(label: str, dim: int, order: int, m: int, seed: int, error: float, steps: int = 10) -> RunRecord:
    """A stored run with only what the figures read."""
    return RunRecord(key=f"{label}-{dim}-{order}-{m}", seed=seed, spec="s", experiment="x", label=label,
                     method="gd", components=m, config={"target": {"dim": dim, "order": order, "rank": 1}},
                     status="ok", error=None, relative_error=error, converged=error <= 1e-2, steps=steps,
                     seconds=0.0, metrics={}, history=None, versions={}, batch=1, wall_seconds=0.0,
                     finished_at="")


def test_e1_measured_threshold_is_the_smallest_m_that_succeeds():
    # d = 10, l = 3: predicted threshold C(12, 3) / 10 = 22; m = 20 fails in 1 of 10 seeds (90% passes),
    # m = 16 in 2 of 10; d = 6: nothing passes
    runs = [fake_run("lazy", 10, 3, m, s, 0.5 if s < fails else 1e-9)
            for m, fails in ((16, 2), (20, 1), (24, 0)) for s in range(10)]
    runs += [fake_run("lazy", 6, 3, 7, s, 0.3) for s in range(3)]
    table = {fig.name: fig.table for fig in figures.e1(runs, 1e-2)}["e1_measured_threshold"]
    assert table.rows == [(6, 3, "9.333", "none", "-", "-"), (10, 3, "22", 20, 16, "0.9091")]


def test_e5_steps_vs_d_leaves_out_a_label_run_at_one_d():
    runs = [fake_run("gd", d, 3, 4, s, 1e-3, steps=d + s) for d in (10, 40) for s in range(2)]
    runs += [fake_run("traced", 50, 3, 20, 0, 1e-4, steps=300)]
    (fig,) = figures.e5(runs, 1e-2)
    assert [row[:4] for row in fig.table.rows] == [("gd", 3, 10, "10.5"), ("gd", 3, 40, "40.5")]


def test_compact_history_keeps_the_first_steps_resolved():
    n = 10_000
    out = compact_history(ot.History({"step": np.arange(n), "loss": np.arange(n) * 0.5}), 100)
    kept = np.asarray(out["step"])
    assert len(kept) <= 100 and kept[0] == 0 and kept[-1] == n - 1 and np.all(np.diff(kept) > 0)
    assert out["loss"] == (kept * 0.5).tolist()
    assert set(range(5)) <= set(kept) and np.sum(kept < n // 100) >= 10  # evenly spaced alone: 1 row
    assert np.diff(kept).max() <= math.ceil(n / 49)  # and still evenly covered
    short = compact_history(ot.History({"step": np.arange(7)}), 100)
    assert short["step"] == list(range(7))
