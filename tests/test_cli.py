"""The real command line, in subprocesses: outputs, JSON, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import overtensor as ot


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "overtensor.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture()
def target_file(tmp_path: Path) -> Path:
    out = run("generate", "--dim", "30", "--rank", "3", "--order", "3", "--seed", "1", "-o", "t.npz",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return tmp_path / "t.npz"


def test_generate_then_decompose_json(target_file: Path, tmp_path: Path):
    t = ot.load(target_file)
    np.testing.assert_array_equal(t.vectors, ot.make_target(30, 3, 3, seed=1).vectors)
    out = run("decompose", "t.npz", "--components", "12", "--seed", "2", "-o", "model.npz", "--json",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)  # exactly one JSON object
    assert {"relative_error", "converged", "steps", "seconds", "method", "components"} <= set(summary)
    assert summary["converged"] and summary["relative_error"] <= 1e-4 and summary["components"] == 12
    model = ot.load(tmp_path / "model.npz")
    np.testing.assert_allclose(model.distance(t) / t.norm(), summary["relative_error"], rtol=1e-5, atol=1e-9)
    # same as the library call with the same seed
    lib = ot.decompose(t, 12, seed=2)
    assert lib.steps == summary["steps"]


def test_human_summary(target_file: Path, tmp_path: Path):
    out = run("decompose", "t.npz", "-m", "12", cwd=tmp_path)
    assert out.returncode == 0
    assert out.stdout.startswith("gd: converged to relative error")


def test_dense_target_file(tmp_path: Path):
    t = ot.make_target(6, 2, 3, seed=0)
    np.save(tmp_path / "d.npy", t.to_dense())
    out = run("decompose", "d.npy", "-m", "6", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["relative_error"] <= 1e-4


def _write_bad_inputs(tmp: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp / "nokeys.npz", weights=np.ones(2), vectors=np.ones((2, 3)))
    np.savez(tmp / "nan.npz", weights=np.array([1.0, np.nan]), vectors=np.ones((2, 3)), order=np.int64(3))
    np.savez(tmp / "inf.npz", weights=np.ones(2), vectors=np.full((2, 3), np.inf), order=np.int64(3))
    np.savez(tmp / "order1.npz", weights=np.ones(2), vectors=np.ones((2, 3)), order=np.int64(1))
    np.savez(tmp / "shapes.npz", weights=np.ones(3), vectors=np.ones((2, 3)), order=np.int64(3))
    np.save(tmp / "asym.npy", rng.standard_normal((3, 3, 3)))
    np.save(tmp / "rect.npy", np.zeros((3, 4, 3)))
    (tmp / "junk.npz").write_bytes(b"not a zip file")
    samples = rng.standard_normal((20, 3))
    samples[17, 2] = np.nan
    np.save(tmp / "nan_samples.npy", samples)
    np.save(tmp / "one_sample.npy", np.ones((1, 3)))
    np.save(tmp / "ints.npy", np.array([["a", "b"], ["c", "d"]]))


BAD = [
    (["decompose", "missing.npz", "-m", "3"], "no such file: missing.npz"),
    (["decompose", "nokeys.npz", "-m", "3"], "missing array 'order'"),
    (["decompose", "nan.npz", "-m", "3"], "weights has 1 non-finite"),
    (["decompose", "inf.npz", "-m", "3"], "vectors has 6 non-finite"),
    (["decompose", "order1.npz", "-m", "3"], "order must be >= 2, got 1"),
    (["decompose", "shapes.npz", "-m", "3"], r"weights \(3,\) and vectors \(2, 3\) disagree"),
    (["decompose", "asym.npy", "-m", "3"], "not symmetric: largest asymmetry"),
    (["decompose", "rect.npy", "-m", "3"], r"equal axes .* got shape \(3, 4, 3\)"),
    (["decompose", "junk.npz", "-m", "3"], "cannot read junk.npz"),
    (["decompose", "t.npz", "-m", "0"], "--components must be >= 1, got 0"),
    (["decompose", "t.npz", "-m", "3", "--method", "sgd"], "unknown method 'sgd'"),
    (["decompose", "t.npz", "-m", "3", "--step-size", "-1"], "step_size must be a finite number > 0"),
    (["decompose", "t.npz", "-m", "3", "--step-size", "100"], "diverged at step"),
    (["decompose", "t.npz", "-m", "3", "-o", "nodir/out.npz"], "folder nodir does not exist"),
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
    (["generate", "--dim", "5", "--rank", "2", "--weights", "1,x", "-o", "g.npz"], "--weights must be"),
    (["generate", "--dim", "5", "--rank", "2", "--weights", "1,2,3", "-o", "g.npz"], "expected 2 weights"),
]


@pytest.mark.parametrize("args,match", BAD, ids=[" ".join(a[:2]) + f"-{i}" for i, (a, _) in enumerate(BAD)])
def test_bad_input_is_one_line_error_without_output(target_file: Path, tmp_path: Path, args, match):
    import re

    _write_bad_inputs(tmp_path)
    before = set(p.name for p in tmp_path.iterdir())
    out = run(*args, *([] if "-o" in args else ["-o", "out.npz"]), cwd=tmp_path)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert re.search(match, lines[0]), lines[0]
    assert set(p.name for p in tmp_path.iterdir()) == before  # no output, no temporary file


def test_interrupted_save_leaves_nothing(tmp_path: Path, monkeypatch):
    from overtensor import io

    def boom(fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.atomic_write(tmp_path / "x.npz", boom)
    assert list(tmp_path.iterdir()) == []


def test_save_load_roundtrip(tmp_path: Path):
    t = ot.make_target(7, 3, 4, kind="gaussian", seed=5)
    ot.save(tmp_path / "t.npz", t)
    back = ot.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(back.vectors, t.vectors)
    assert back.order == 4
    d = ot.DenseSymTensor(t.to_dense())
    ot.save(tmp_path / "d.npy", d)
    np.testing.assert_array_equal(ot.load(tmp_path / "d.npy").array, d.array)


def test_decompose_samples_as_a_moment_target(tmp_path: Path):
    """A .npy of samples on three orthonormal points: the order-3 moment is Σ_j (n_j/n) a_j^{⊗3}."""
    rng = np.random.default_rng(3)
    A = np.linalg.qr(rng.standard_normal((5, 3)))[0].T
    labels = rng.choice(3, size=300, p=[0.5, 0.3, 0.2])
    np.save(tmp_path / "x.npy", A[labels])
    out = run("decompose", "x.npy", "--moment-order", "3", "-m", "3", "--method", "power", "-o", "m.npz", "--json",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    truth = ot.SymCP(np.bincount(labels) / 300, A, 3)
    assert ot.load(tmp_path / "m.npz").distance(truth) <= 1e-6 * truth.norm()
    # a signed model with spare negative components still fits a positive target (they stay near 0)
    signed = run("decompose", "x.npy", "--moment-order", "4", "-m", "6", "--method", "beyond-lazy",
                 "--signs", "1,1,1,1,-1,-1", "-o", "s.npz", cwd=tmp_path)
    assert signed.returncode == 0, signed.stderr
    truth4 = ot.SymCP(truth.weights, A, 4)
    assert ot.load(tmp_path / "s.npz").distance(truth4) <= 2e-4 * truth4.norm()
