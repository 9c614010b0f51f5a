"""Small grids that chose the defaults of ``gd`` and ``beyond_lazy`` (docs/defaults.md).

Usage: python benchmarks/choose_defaults.py [--seeds 6] [--only gd|beyond_lazy]

Each row runs one setting on a few problems, ``--seeds`` seeds each (one
batched call per problem), and reports successes (relative error <= tol
within the budget), the median steps of the successful runs, and the wall
time. ``beyond_lazy`` settings vary one option at a time around the chosen
defaults (marked ``*``).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import overtensor as ot
from overtensor.solvers.problem import spectral_norm_estimate

# (label, target factory (seed -> SymCP), m)
GD_PROBLEMS = [
    ("l=3 orth r=5 d=50 m=20", lambda s: ot.make_target(50, 5, 3, seed=s), 20),
    ("l=3 gauss geo10 r=5 d=50 m=20",
     lambda s: ot.make_target(50, 5, 3, kind="gaussian", weights="geometric", seed=s), 20),
    ("l=4 gauss geo10 r=3 d=15 m=12",
     lambda s: ot.make_target(15, 3, 4, kind="gaussian", weights="geometric", seed=s), 12),
    ("l=4 orth r=3 d=15 m=12", lambda s: ot.make_target(15, 3, 4, seed=s), 12),
    ("l=4 gauss r=20 d=30 m=60", lambda s: ot.make_target(30, 20, 4, kind="gaussian", seed=s), 60),
]
BL_PROBLEMS = [
    ("l=3 orth geo30 r=10 d=100 m=12",
     lambda s: ot.make_target(100, 10, 3, weights="geometric", spread=30, seed=s), 12),
    ("l=3 orth r=5 d=200 m=7", lambda s: ot.make_target(200, 5, 3, seed=s), 7),
    ("l=4 orth geo10 r=5 d=30 m=7", lambda s: ot.make_target(30, 5, 4, weights="geometric", seed=s), 7),
]
GD_STEPS = [0.2, 0.3, 0.4, 0.5]
BL_GRID: list[dict] = [
    {},
    {"recycle": False},
    {"reg_rel": 0.0}, {"reg_rel": 0.0, "recycle": False},
    {"reg_rel": 1e-4}, {"reg_rel": 1e-3}, {"reg_rel": 1e-2},
    {"final_below": 0.0}, {"final_below": 0.1},
    {"merge_cos": 0.95}, {"merge_cos": 0.999},
    {"epoch_steps": 50}, {"epoch_steps": 200}, {"epoch_steps": 500},
    {"epoch_growth": 1.0}, {"epoch_growth": 1.5},
    {"reinit_rel": 0.1}, {"reinit_rel": 0.9},
]


def resolve(options: dict, target: ot.SymCP) -> dict:
    """Options given relative to the target (``step_rel`` to σ, ``reg_rel`` and ``reinit_rel``
    to ‖T*‖) made absolute; σ is the spectral-norm estimate behind the default step."""
    out = dict(options)
    norm = target.norm()
    if "step_rel" in out:
        out["step_size"] = out.pop("step_rel") / float(spectral_norm_estimate(target.op, target.dim))
    if "reg_rel" in out:
        out["reg"] = out.pop("reg_rel") * norm
    if "reinit_rel" in out:
        delta0 = 1e-3 * np.sqrt(norm)
        out.update(init_scale=delta0, reinit_scale=out.pop("reinit_rel") * delta0)
    return out


def batch(problem, method: str, seeds: list[int], tol: float, **options) -> tuple[int, float, float, int]:
    """(successes, median steps of the successes, seconds, diverged runs)."""
    _label, factory, m = problem
    targets = [factory(s) for s in seeds]
    t0 = time.perf_counter()
    try:
        if options:  # absolute values differ per target: one run each
            results = [ot.decompose(t, m, method, seed=s, tol=tol, **resolve(options, t))
                       for t, s in zip(targets, seeds)]
        else:  # defaults are per run: one batched call
            results = ot.decompose_batch(targets, m, method, seeds=seeds, tol=tol)
    except ot.OvertensorError:
        return 0, np.nan, time.perf_counter() - t0, len(seeds)  # diverged
    seconds = time.perf_counter() - t0
    ok = [r.steps for r in results if r.converged]
    return len(ok), float(np.median(ok)) if ok else np.nan, seconds, 0


def cell(ok: int, steps: float, seconds: float, diverged: int, n: int) -> str:
    if diverged:
        return "diverged"
    return f"{ok}/{n}, {steps:.0f} steps, {seconds:.1f} s" if ok else f"0/{n}, {seconds:.1f} s"


def gd_table(seeds: list[int]) -> None:
    print("### gd: step size η = c / σ (tol 1e-4, 20000 steps)\n")
    print("| c | " + " | ".join(p[0] for p in GD_PROBLEMS) + " |")
    print("|---" * (len(GD_PROBLEMS) + 1) + "|")
    for c in GD_STEPS:
        cells = [cell(*batch(p, "gd", seeds, 1e-4, step_rel=c, max_steps=20000), len(seeds)) for p in GD_PROBLEMS]
        print(f"| {c} | " + " | ".join(cells) + " |")
    print()


def bl_table(seeds: list[int]) -> None:
    print("### beyond_lazy: one option at a time around the defaults (tol 1e-3)\n")
    print("| setting | " + " | ".join(p[0] for p in BL_PROBLEMS) + " |")
    print("|---" * (len(BL_PROBLEMS) + 1) + "|")
    for options in BL_GRID:
        name = ", ".join(f"{k}={v}" for k, v in options.items()) or "* defaults"
        cells = []
        for p in BL_PROBLEMS:
            cells.append(cell(*batch(p, "beyond_lazy", seeds, 1e-3, **options), len(seeds)))
        print(f"| {name} | " + " | ".join(cells) + " |")
    gd = [cell(*batch(p, "gd", seeds, 1e-3, max_steps=30000), len(seeds)) for p in BL_PROBLEMS]
    print("| plain gd, 30000 steps | " + " | ".join(gd) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--only", choices=["gd", "beyond_lazy"])
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, "
          f"python {platform.python_version()}, seeds {seeds}\n")
    if args.only in (None, "gd"):
        gd_table(seeds)
    if args.only in (None, "beyond_lazy"):
        bl_table(seeds)


if __name__ == "__main__":
    main()
