"""Ctrl-C in ``overtensor sweep``, N times: exit status and stderr of each trial.

Each trial starts ``tests/data/sweep_slow.yaml`` (4 quick runs, then 4 that take
minutes) in its own process group, waits until a first run is stored (the sweep
has provably started and cannot have finished), waits a random 0-0.5 s more so
that the signal lands at different moments, then sends SIGINT to the group as
a terminal does.  A trial is clean when the exit status is 130, stderr is one
line starting "interrupted:", and no traceback is printed.

    PYTHONPATH=src python benchmarks/ctrl_c_trials.py [N] [SPEC]

With ``SPEC`` = ``tests/data/sweep_gd.yaml`` (24 quick runs) the signal may also
land while the workers start or after the last run is stored.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = Path(__file__).parent.parent / "tests" / "data" / "sweep_slow.yaml"


def rows(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def trial(folder: Path, delay: float, spec: Path) -> tuple[int, str]:
    db = folder / "runs.db"
    proc = subprocess.Popen([sys.executable, "-m", "overtensor.cli", "sweep", str(spec), "--store", str(db),
                             "--workers", "2", "--max-batch", "1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while rows(db) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def main(n: int, spec: Path) -> None:
    rng = random.Random(0)
    outcomes: collections.Counter = collections.Counter()
    for i in range(n):
        with tempfile.TemporaryDirectory() as tmp:
            rc, err = trial(Path(tmp), rng.uniform(0.0, 0.5), spec)
        clean = rc == 130 and err.count("\n") == 1 and err.startswith("interrupted:") and "Traceback" not in err
        outcomes["clean" if clean else f"rc={rc}"] += 1
        print(f"trial {i + 1}: exit {rc}, {err.count(chr(10))} stderr lines: {err.strip().splitlines()[-1:] }",
              flush=True)
        if not clean:
            print(err, flush=True)
    print(dict(outcomes))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15, Path(sys.argv[2]) if len(sys.argv) > 2 else SPEC)
