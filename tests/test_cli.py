"""The command line: outputs, JSON, and one-line errors for bad input.

Most tests run the CLI in-process through click's ``CliRunner``; a few start the
real program as a subprocess (the entry point, and Ctrl-C, which needs a real signal).
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import Result
from conftest import cli_runner

import overtensor as ot
from overtensor import api as ot_api
from overtensor import io as ot_io
from overtensor.cli import main
from overtensor.experiments.store import Store

DATA = Path(__file__).parent / "data"
SPEC = DATA / "sweep_gd.yaml"


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``cli(*args)`` runs ``overtensor *args`` in-process with ``tmp_path`` as the working folder."""
    monkeypatch.chdir(tmp_path)
    runner = cli_runner()
    return lambda *args: runner.invoke(main, list(args), prog_name="overtensor")


@pytest.fixture()
def target_file(cli, tmp_path: Path) -> Path:
    out = cli("generate", "--dim", "30", "--rank", "3", "--order", "3", "--seed", "1", "-o", "t.npz")
    assert out.exit_code == 0, out.stderr
    return tmp_path / "t.npz"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A result store with the 24 runs of the test spec (one local worker)."""
    db = tmp_path_factory.mktemp("store") / "runs.db"
    out = cli_runner().invoke(main, ["sweep", str(SPEC), "--store", str(db), "--workers", "1"])
    assert out.exit_code == 0, out.stderr
    return db


def files(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` (temporary files included) with its bytes."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def assert_one_line_error(out: Result, match: str) -> None:
    assert out.exit_code != 0
    # an exception other than SystemExit is one that a terminal would show as a traceback
    assert isinstance(out.exception, SystemExit), out.exception
    assert out.stdout == ""  # --json prints nothing on an error either
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert re.search(match, lines[0]), lines[0]


# ----------------------------------------------------------------------------- outputs

def test_generate_then_decompose_json(cli, target_file: Path, tmp_path: Path):
    t = ot.load(target_file)
    np.testing.assert_array_equal(t.vectors, ot.make_target(30, 3, 3, seed=1).vectors)
    out = cli("decompose", "t.npz", "--components", "12", "--seed", "2", "-o", "model.npz", "--json")
    assert out.exit_code == 0, out.stderr
    summary = json.loads(out.stdout)  # exactly one JSON object
    assert {"relative_error", "converged", "steps", "seconds", "method", "components"} <= set(summary)
    assert summary["converged"] and summary["relative_error"] <= 1e-4 and summary["components"] == 12
    model = ot.load(tmp_path / "model.npz")
    # the difference-of-squares error resolves ~1e-8 relative to ||T*||: rel. error 1e-4 to ~1e-4 relative
    np.testing.assert_allclose(model.distance(t) / t.norm(), summary["relative_error"], rtol=1e-5, atol=1e-9)
    # same as the library call with the same seed
    lib = ot.decompose(t, 12, seed=2)
    assert lib.steps == summary["steps"]


def test_human_summary(cli, target_file: Path):
    out = cli("decompose", "t.npz", "-m", "12")
    assert out.exit_code == 0, out.stderr
    assert out.stdout.startswith("gd: converged to relative error")


def test_dense_target_file(cli, tmp_path: Path):
    t = ot.make_target(6, 2, 3, seed=0)
    np.save(tmp_path / "d.npy", t.to_dense())
    out = cli("decompose", "d.npy", "-m", "6", "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["relative_error"] <= 1e-4


def test_overwriting_an_unrelated_output_is_allowed(cli, target_file: Path, tmp_path: Path):
    (tmp_path / "model.npz").write_bytes(b"old")
    out = cli("decompose", "t.npz", "-m", "6", "--seed", "3", "-o", "model.npz")
    assert out.exit_code == 0, out.stderr
    np.testing.assert_array_equal(ot.load(tmp_path / "model.npz").vectors,
                                  ot.decompose(ot.load(target_file), 6, seed=3).model.vectors)


def test_results_file_equals_stdout(cli, store: Path, tmp_path: Path):
    printed = cli("results", str(store), "--format", "json")
    assert printed.exit_code == 0, printed.stderr
    rows = json.loads(printed.stdout)
    assert len(rows) == 24  # 2 dims x 3 m x 4 seeds in the spec
    written = cli("results", str(store), "--format", "json", "-o", "r.json")
    assert written.exit_code == 0, written.stderr
    assert (tmp_path / "r.json").read_text() == printed.stdout
    assert sorted(files(tmp_path)) == ["r.json"]  # no temporary file left


def test_parquet_is_written_atomically(cli, store: Path, tmp_path: Path, monkeypatch):
    """pyarrow writes to a path: the command hands it a temporary one (pyarrow itself is optional)."""
    from overtensor.experiments import table

    seen = []

    def fake(rows, fmt, out):
        seen.append((len(rows), fmt, out.parent == tmp_path, out.name != "r.parquet"))
        out.write_bytes(b"PAR1 partial")
        if len(seen) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(table, "write_table", fake)
    assert cli("results", str(store), "--format", "parquet", "-o", "r.parquet").exit_code == 0
    assert files(tmp_path) == {"r.parquet": b"PAR1 partial"}
    out = cli("results", str(store), "--format", "parquet", "-o", "r2.parquet")
    assert (out.exit_code, out.stderr) == (130, "interrupted\n")
    assert seen == [(24, "parquet", True, True)] * 2
    assert files(tmp_path) == {"r.parquet": b"PAR1 partial"}  # no partial r2.parquet, no temporary file


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077], ids=["022", "027", "077"])
def test_output_mode_follows_umask(cli, store: Path, tmp_path: Path, mask: int):
    old = os.umask(mask)
    try:
        assert cli("generate", "-d", "4", "-r", "2", "-o", "g.npz").exit_code == 0
        assert cli("results", str(store), "-o", "r.csv").exit_code == 0
    finally:
        os.umask(old)
    for name in ("g.npz", "r.csv"):  # as open(name, "w") would make them
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask


def test_replaced_output_keeps_its_mode(cli, tmp_path: Path):
    assert cli("generate", "-d", "4", "-r", "2", "-o", "g.npz").exit_code == 0
    os.chmod(tmp_path / "g.npz", 0o640)
    assert cli("generate", "-d", "4", "-r", "2", "--seed", "1", "-o", "g.npz").exit_code == 0
    assert (tmp_path / "g.npz").stat().st_mode & 0o777 == 0o640
    np.testing.assert_array_equal(ot.load(tmp_path / "g.npz").vectors, ot.make_target(4, 2, seed=1).vectors)


# ----------------------------------------------------------------------------- bad input

def _write_bad_inputs(tmp: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp / "nokeys.npz", weights=np.ones(2), vectors=np.ones((2, 3)))
    np.savez(tmp / "nan.npz", weights=np.array([1.0, np.nan]), vectors=np.ones((2, 3)), order=np.int64(3))
    np.savez(tmp / "inf.npz", weights=np.ones(2), vectors=np.full((2, 3), np.inf), order=np.int64(3))
    np.savez(tmp / "order1.npz", weights=np.ones(2), vectors=np.ones((2, 3)), order=np.int64(1))
    np.savez(tmp / "shapes.npz", weights=np.ones(3), vectors=np.ones((2, 3)), order=np.int64(3))
    np.savez(tmp / "cplx.npz", weights=np.ones(2) + 1j, vectors=np.ones((2, 3)), order=np.int64(3))
    np.save(tmp / "asym.npy", rng.standard_normal((3, 3, 3)))
    np.save(tmp / "rect.npy", np.zeros((3, 4, 3)))
    sym = ot.make_target(3, 2, 3).to_dense()
    np.save(tmp / "cplx.npy", sym * (1 + 1j))
    with open(tmp / "npy.npz", "wb") as fh:  # np.save would append .npy to the name
        np.save(fh, sym)
    with open(tmp / "npz.npy", "wb") as fh:
        np.savez(fh, a=sym)
    (tmp / "junk.npz").write_bytes(b"PK not a zip file")
    (tmp / "text.npz").write_text("weights,vectors\n1,2\n")
    (tmp / "text.npy").write_text("1 2 3\n")
    (tmp / "t.txt").write_text("")
    (tmp / "folder.npz").mkdir()
    (tmp / "folder.csv").mkdir()
    (tmp / "afile").write_text("")
    (tmp / "report.txt").write_text("")
    Store(tmp / "empty.db", create=True).close()  # a store with no runs
    samples = rng.standard_normal((20, 3))
    samples[17, 2] = np.nan
    np.save(tmp / "nan_samples.npy", samples)
    np.save(tmp / "one_sample.npy", np.ones((1, 3)))
    np.save(tmp / "ints.npy", np.array([["a", "b"], ["c", "d"]]))


BAD = [
    # inputs
    (["decompose", "missing.npz", "-m", "3"], "no such file: missing.npz"),
    (["decompose", "t.txt", "-m", "3"], "unknown file type '.txt'"),
    (["decompose", "folder.npz", "-m", "3"], "folder.npz is a folder, not a tensor file"),
    (["decompose", "nokeys.npz", "-m", "3"], "missing array 'order'"),
    (["decompose", "nan.npz", "-m", "3"], "weights has 1 non-finite"),
    (["decompose", "inf.npz", "-m", "3"], "vectors has 6 non-finite"),
    (["decompose", "order1.npz", "-m", "3"], "order must be >= 2, got 1"),
    (["decompose", "shapes.npz", "-m", "3"], r"weights \(3,\) and vectors \(2, 3\) disagree"),
    (["decompose", "cplx.npz", "-m", "3"], "cplx.npz: weights must be real, got a complex array"),
    (["decompose", "asym.npy", "-m", "3"], "not symmetric: largest asymmetry"),
    (["decompose", "rect.npy", "-m", "3"], r"equal axes .* got shape \(3, 4, 3\)"),
    (["decompose", "cplx.npy", "-m", "3"], "cplx.npy: dense tensor must be real, got a complex array"),
    (["decompose", "junk.npz", "-m", "3"], "cannot read junk.npz"),
    (["decompose", "text.npz", "-m", "3"], "text.npz is not a NumPy .npz file"),
    (["decompose", "text.npy", "-m", "3"], "text.npy is not a NumPy .npy file"),
    (["decompose", "npy.npz", "-m", "3"], "npy.npz holds a NumPy .npy file, not .npz; rename it to npy.npy"),
    (["decompose", "npz.npy", "-m", "3"], "npz.npy holds a NumPy .npz file, not .npy; rename it to npz.npz"),
    # options
    (["decompose", "t.npz", "-m", "0"], "--components must be >= 1, got 0"),
    (["decompose", "t.npz", "-m", "3", "--method", "sgd"], "unknown method 'sgd'"),
    (["decompose", "t.npz", "-m", "3", "--method", "power", "--max-steps", "5"], "unknown option 'max_steps'"),
    (["decompose", "t.npz", "-m", "3", "--step-size", "-1"], "step_size of method 'gd' must be a finite number > 0"),
    (["decompose", "t.npz", "-m", "3", "--tol", "nan"], "tol of method 'gd' must be a finite number >= 0, got nan"),
    (["decompose", "t.npz", "-m", "3", "--max-steps", "-5"], "max_steps of method 'gd' must be an integer >= 0, "
                                                            "got -5"),
    (["decompose", "t.npz", "-m", "3", "--method", "beyond-lazy", "--merge-cos", "2"],
     r"merge_cos of method 'beyond_lazy' must be a finite number > 0 and <= 1, got 2.0"),
    (["decompose", "t.npz", "-m", "3", "--method", "lazy", "--alpha", "2"],
     "unknown option 'alpha' for method 'lazy'; expected one of tol, cg_tol, max_iter, record_every"),
    (["decompose", "t.npz", "-m", "3", "--method", "power", "--max-iter", "2.5"],
     r"Invalid value for '--max-iter': '2.5' is not a valid integer. \(see 'overtensor decompose -h'\)"),
    (["decompose", "t.npz", "-m", "3", "--method", "als", "--als-init", "best"],
     r"Invalid value for '--als-init': 'best' is not one of 'random', 'svd'."),
    (["decompose", "t.npz", "-m", "3", "--seed", "-1"], "seed must be an integer >= 0, got -1"),
    (["decompose", "t.npz", "-m", "3", "--tol", "x"],
     r"Invalid value for '--tol': 'x' is not a valid float. \(see 'overtensor decompose -h'\)"),
    (["decompose", "t.npz", "-m", "3", "--polish-steps", "5"], "--polish-steps 5 needs --recover"),
    (["decompose", "t.npz", "-m", "3", "--recover", "--polish-steps", "-1"], "--polish-steps must be >= 0, got -1"),
    (["decompose", "t.npz", "-m", "3", "--step-size", "100", "--json"], "diverged at step"),
    (["decompose", "t.npz", "-m", "3", "--device", "cuda"], "runs on the CPU only, got device 'cuda'"),
    (["decomp", "t.npz"], r"No such command 'decomp'"),
    (["decompose", "nan_samples.npy", "-m", "3", "--moment-order", "3"], "samples have 1 non-finite"),
    (["decompose", "rect.npy", "-m", "3", "--moment-order", "3"], r"2-d \(n, d\) array, got shape \(3, 4, 3\)"),
    (["decompose", "one_sample.npy", "-m", "3", "--moment-order", "3"], "at least 2 rows"),
    (["decompose", "ints.npy", "-m", "3", "--moment-order", "3"], "float or integer numbers, got dtype <U1"),
    (["decompose", "missing.npy", "-m", "3", "--moment-order", "3"], "cannot read samples from 'missing.npy'"),
    (["decompose", "t.npz", "-m", "3", "--signs", "1,x"], "--signs must be 'half' or comma-separated"),
    (["decompose", "t.npz", "-m", "3", "--signs", "1,1"], "signs must be 'half' or 3 values"),
    (["generate", "--dim", "3", "--rank", "5", "-o", "g.npz"], "rank <= dim, got rank 5 > dim 3"),
    (["generate", "--dim", "-3", "--rank", "2", "-o", "g.npz"], "dim must be >= 1, got -3"),
    (["generate", "--dim", "5", "--rank", "2", "--order", "1", "-o", "g.npz"], "order must be >= 2, got 1"),
    (["generate", "--dim", "5", "--rank", "2", "--seed", "-1", "-o", "g.npz"], "seed must be an integer >= 0"),
    (["generate", "--dim", "5", "--rank", "2", "--weights", "1,x", "-o", "g.npz"], "--weights must be"),
    (["generate", "--dim", "5", "--rank", "2", "--weights", "1,2,3", "-o", "g.npz"], "expected 2 weights"),
    (["generate", "--dim", "5", "--rank", "2", "--weights", "1,-1", "-o", "g.npz"], "weights must be finite and > 0"),
    (["results", "missing.db"], "no result store at missing.db"),
    (["results", "t.npz"], "t.npz is not an overtensor result store"),
    (["results", "empty.db", "--format", "csv", "-o", "x.json"], "output file must end in .csv, got x.json"),
    (["report", "missing.db", "-o", "rep"], "no result store at missing.db"),
    (["report", "empty.db", "-o", "rep"], "holds no runs"),
    (["report", "empty.db", "-o", "rep", "--epsilon", "-1"], "--epsilon must be a finite number > 0, got -1.0"),
    (["report", "empty.db", "-o", "rep", "--epsilon", "inf"], "--epsilon must be a finite number > 0, got inf"),
    # outputs
    (["decompose", "t.npz", "-m", "3", "-o", "nodir/out.npz"], "folder nodir does not exist"),
    (["decompose", "t.npz", "-m", "3", "-o", "out.npy"], "output file must end in .npz, got out.npy"),
    (["decompose", "t.npz", "-m", "3", "-o", "folder.npz"], "folder.npz is a folder; the output must be a file"),
    (["decompose", "t.npz", "-m", "3", "-o", "afile/out.npz"], "cannot write afile/out.npz: afile is not a folder"),
    (["decompose", "t.npz", "-m", "3", "-o", "t.npz"], "output t.npz is the input t.npz; refusing to overwrite"),
    (["generate", "--dim", "5", "--rank", "2", "-o", "folder.npz"], "folder.npz is a folder"),
    (["generate", "--dim", "5", "--rank", "2", "-o", "g.txt"], "output file must end in .npz, got g.txt"),
    (["results", "empty.db", "-o", "folder.csv"], "folder.csv is a folder; the output must be a file"),
    (["results", "empty.db", "-o", "empty.db"], "output file must end in .csv"),
    (["report", "empty.db", "-o", "report.txt"], "report.txt is a file; the output must be a folder"),
    (["report", "empty.db", "-o", "afile/rep"], "cannot create afile/rep: afile is not a folder"),
]


@pytest.mark.parametrize("args,match", BAD, ids=[" ".join(a[:2]) + f"-{i}" for i, (a, _) in enumerate(BAD)])
def test_bad_input_is_one_line_error_without_output(cli, target_file: Path, tmp_path: Path, args, match):
    _write_bad_inputs(tmp_path)
    before = files(tmp_path)
    out = cli(*args, *([] if "-o" in args or args[0] != "decompose" else ["-o", "out.npz"]))
    assert_one_line_error(out, match)
    assert files(tmp_path) == before  # nothing overwritten, no output, no temporary file
    assert not (tmp_path / "rep").exists()


def test_output_may_not_be_the_input_store(cli, store: Path, tmp_path: Path):
    """A store named like the output format, or a link to it, is refused as -o."""
    db = tmp_path / "runs.json"
    db.write_bytes(store.read_bytes())
    (tmp_path / "link.csv").symlink_to(db)
    before = files(tmp_path)
    assert_one_line_error(cli("results", "runs.json", "--format", "json", "-o", "runs.json"),
                          "output runs.json is the input runs.json; refusing to overwrite")
    assert_one_line_error(cli("results", "runs.json", "-o", "link.csv"), "output link.csv is the input runs.json")
    assert files(tmp_path) == before


def _read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``os.access`` report ``folder`` unwritable (chmod would not stop root, who runs CI here)."""
    real = os.access

    def access(path, mode, **kw):
        if mode & os.W_OK and Path(path).resolve() == folder.resolve():
            return False
        return real(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)


@pytest.mark.parametrize("args", [
    ["decompose", "t.npz", "-m", "3", "-o", "ro/out.npz"],
    ["generate", "-d", "4", "-r", "2", "-o", "ro/g.npz"],
    ["results", "empty.db", "-o", "ro/r.csv"],
    ["report", "empty.db", "-o", "ro/rep"],
    ["report", "empty.db", "-o", "ro/new/rep"],
], ids=["decompose", "generate", "results", "report", "report-nested"])
def test_read_only_folder_is_refused_before_any_work(cli, target_file: Path, tmp_path: Path, monkeypatch, args):
    _write_bad_inputs(tmp_path)
    (tmp_path / "ro").mkdir()
    _read_only(monkeypatch, tmp_path / "ro")
    monkeypatch.setattr(ot_api, "decompose", lambda *a, **k: pytest.fail("solved before checking -o"))
    out = cli(*args)
    assert_one_line_error(out, r"cannot (write|create) ro/\S+: folder ro is not writable")
    assert list((tmp_path / "ro").iterdir()) == []


@pytest.mark.parametrize("where", ["mkstemp", "replace"])
def test_failed_write_is_one_line_and_leaves_nothing(cli, tmp_path: Path, monkeypatch, where):
    """A file system that refuses the write after the checks passed (e.g. remounted read-only)."""
    def refuse(*args, **kw):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(ot_io.tempfile if where == "mkstemp" else ot_io.os, where, refuse)
    out = cli("generate", "-d", "4", "-r", "2", "-o", "g.npz")
    assert_one_line_error(out, "cannot write g.npz: Read-only file system")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_in_process(cli, target_file: Path, tmp_path: Path, monkeypatch):
    def interrupted(*args, progress, **kw):
        progress(20)
        raise KeyboardInterrupt

    monkeypatch.setattr(ot_api, "decompose", interrupted)  # the CLI calls it at run time
    before = files(tmp_path)
    out = cli("decompose", "t.npz", "-m", "3", "-o", "out.npz")
    assert out.exit_code == 130
    assert out.stderr.strip().splitlines() == ["interrupted after 20 steps; nothing written"]
    assert files(tmp_path) == before


# ----------------------------------------------------------------------------- library I/O

def test_interrupted_save_leaves_nothing(tmp_path: Path):
    def boom(fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ot_io.atomic_write(tmp_path / "x.npz", boom)
    assert list(tmp_path.iterdir()) == []


def test_save_into_a_folder_is_an_error(tmp_path: Path):
    (tmp_path / "x.npz").mkdir()
    with pytest.raises(ot.OvertensorError, match="x.npz is a folder"):
        ot.save(tmp_path / "x.npz", ot.make_target(3, 2))


def test_save_load_roundtrip(tmp_path: Path):
    t = ot.make_target(7, 3, 4, kind="gaussian", seed=5)
    ot.save(tmp_path / "t.npz", t)
    back = ot.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(back.vectors, t.vectors)
    assert back.order == 4
    d = ot.DenseSymTensor(t.to_dense())
    ot.save(tmp_path / "d.npy", d)
    np.testing.assert_array_equal(ot.load(tmp_path / "d.npy").array, d.array)


def test_decompose_samples_as_a_moment_target(cli, tmp_path: Path):
    """A .npy of samples on three orthonormal points: the order-3 moment is Σ_j (n_j/n) a_j^{⊗3}."""
    rng = np.random.default_rng(3)
    A = np.linalg.qr(rng.standard_normal((5, 3)))[0].T
    labels = rng.choice(3, size=300, p=[0.5, 0.3, 0.2])
    np.save(tmp_path / "x.npy", A[labels])
    out = cli("decompose", "x.npy", "--moment-order", "3", "-m", "3", "--method", "power", "-o", "m.npz", "--json")
    assert out.exit_code == 0, out.stderr
    truth = ot.SymCP(np.bincount(labels) / 300, A, 3)
    assert ot.load(tmp_path / "m.npz").distance(truth) <= 1e-6 * truth.norm()
    # a signed model with spare negative components still fits a positive target (they stay near 0)
    signed = cli("decompose", "x.npy", "--moment-order", "4", "-m", "6", "--method", "beyond-lazy",
                 "--signs", "1,1,1,1,-1,-1", "-o", "s.npz")
    assert signed.exit_code == 0, signed.stderr
    truth4 = ot.SymCP(truth.weights, A, 4)
    assert ot.load(tmp_path / "s.npz").distance(truth4) <= 2e-4 * truth4.norm()


def test_decompose_flags_and_help_come_from_the_option_models():
    """One flag per option of the CLI methods, each help naming the methods that take it, its bound and default."""
    from overtensor.cli import _NOT_CLI
    from overtensor.solvers.options import MODELS, takes_cli

    out = cli_runner().invoke(main, ["decompose", "--help"], terminal_width=10_000)
    assert out.exit_code == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip().startswith("--")}
    names = {n for k, m in MODELS.items() if k not in _NOT_CLI for n, f in m.model_fields.items() if takes_cli(f)}
    for name in names:
        flag = "--" + name.replace("_", "-")
        assert flag in lines, flag
    assert "--init" not in lines and "--truth" not in lines and "--ftol" not in lines  # objects; polish only
    assert "gd, beyond_lazy: Step size η. Auto: 0.3 / σ" in lines["--step-size"]  # the rule gd applies
    assert "[> 0; default: auto]" in lines["--step-size"]
    # one flag, three methods, three defaults
    assert all(part in lines["--max-iter"] for part in ("lazy: CG iteration budget. [>= 1; default: 5000]",
                                                        "power: Power iterations per component. [>= 1; default: 100]",
                                                        "als: ALS sweeps. [>= 1; default: 500]"))
    assert "beyond_lazy: τ: directions with cosine at least this merge (recycle). [> 0 and <= 1; default: 0.99]" \
        in lines["--merge-cos"]
    assert "all methods:" in lines["--tol"] and lines["--recycle"].strip().startswith("--recycle / --no-recycle")


def test_top_level_help_builds_no_option_model():
    """``overtensor --help`` loads neither NumPy nor pydantic (the option models load for ``decompose``)."""
    code = ("import sys; from overtensor.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('numpy', 'pydantic', 'overtensor.solvers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


# ----------------------------------------------------------------------------- real processes

def test_entry_points_run(tmp_path: Path):
    script = Path(sys.executable).with_name("overtensor")
    commands = [[sys.executable, "-m", "overtensor.cli", "--help"]]
    if script.exists():  # the console script of an installed overtensor
        commands.append([str(script), "--help"])
    for command in commands:
        out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "decompose" in out.stdout and "sweep" in out.stdout


# Runs the real CLI, touching a marker file at the solver's first progress report: the
# signal is sent once the solve has provably started. The default SIGINT handler is set
# explicitly since a shell's background job inherits SIGINT ignored.
_HARNESS = """
import pathlib, signal, sys
from overtensor import cli, progress
signal.signal(signal.SIGINT, signal.default_int_handler)
marker = pathlib.Path(sys.argv.pop(1))
report = progress.Progress.__call__
def started(self, n):
    marker.touch()
    report(self, n)
progress.Progress.__call__ = started
cli.main(prog_name="overtensor")
"""


def test_ctrl_c_exits_130_with_one_line(tmp_path: Path):
    ot.save(tmp_path / "t.npz", ot.make_target(20, 3, seed=0))
    marker = tmp_path / "started"
    # tol 0 and a huge budget: the run cannot finish before the signal
    proc = subprocess.Popen([sys.executable, "-c", _HARNESS, str(marker), "decompose", "t.npz", "-m", "12",
                             "--tol", "0", "--max-steps", "1000000000", "-o", "out.npz"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the solve did not start within 60 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(r"interrupted after \d+ steps; nothing written", lines[0]), stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["started", "t.npz"]
