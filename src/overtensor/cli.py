"""The ``overtensor`` command line.

Every expected failure (bad input, a diverged run) is reported as one line
on stderr with exit status 1 (2 for a usage error, 130 for Ctrl-C), and
leaves no output file: every output path is checked (:func:`overtensor.io.check_output`)
before any work, and files are written atomically.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from . import __version__
from .errors import OvertensorError
from .progress import LOG, Progress, step_budget

if TYPE_CHECKING:
    from .result import DecompositionResult
    from .solvers.problem import Target
    from .tensors.targets import Kind, Weights

# The library (NumPy, the solvers) and the option models (pydantic) load inside the commands
# that use them, so that ``overtensor --help`` stays fast (tests/test_cli.py).


class _Group(click.Group):
    """Turns library errors into one-line CLI errors (no traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OvertensorError as exc:
            raise click.ClickException(str(exc)) from None
        except MemoryError:
            raise click.ClickException("out of memory; try fewer components or a smaller problem") from None
        except click.UsageError as exc:  # click prints usage and a hint on three more lines; keep one
            where = f" (see '{exc.ctx.command_path} -h')" if exc.ctx is not None else ""
            raise click.UsageError(exc.format_message() + where) from None
        except KeyboardInterrupt:  # click would print "Aborted!" and exit 1
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(130) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="overtensor")
def main() -> None:
    """Over-parameterized symmetric tensor decomposition by gradient descent."""
    if not any(isinstance(h, _StderrLog) for h in LOG.handlers):  # progress lines where no bar can go
        LOG.addHandler(_StderrLog())
        LOG.setLevel(logging.INFO)


class _StderrLog(logging.Handler):
    """Log records as lines on whatever ``sys.stderr`` is at the time (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _parse_signs(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise OvertensorError(f"--signs must be 'half' or comma-separated +1/-1 values, got {text!r}") from None


def _parse_weights(text: str) -> Weights:
    if text in ("equal", "geometric"):
        return cast("Weights", text)  # one of the two profile names
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise OvertensorError(
            f"--weights must be 'equal', 'geometric' or a comma-separated list of numbers, got {text!r}"
        ) from None


def _output_path(path: str, suffix: str, *inputs: str) -> Path:
    """The checked ``-o`` file: right suffix, writable folder, not a folder, not one of ``inputs``."""
    from .io import check_output

    return check_output(path, suffix=suffix, inputs=inputs)


class _LazyCommand(click.Command):
    """A command whose parameters are completed on first use by ``complete(params)``.

    ``overtensor --help`` shows only the commands' short help, so what ``complete`` imports
    (the library, the option models) loads for the command that needs it only.
    """

    def __init__(self, *args: Any, complete: Callable[[list[click.Parameter]], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._complete: Callable[[list[click.Parameter]], None] | None = complete

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if self._complete is not None:
            complete, self._complete = self._complete, None
            complete(self.params)
        return super().get_params(ctx)


def _generate_params(params: list[click.Parameter]) -> None:
    """``--kind`` of ``generate``: its choices from :data:`overtensor.tensors.targets.KINDS`."""
    from .tensors.targets import KINDS

    at = next(i for i, p in enumerate(params) if p.name == "weights")
    params.insert(at, click.Option(["--kind"], type=click.Choice(KINDS), default="orthonormal", show_default=True,
                                   help="How the true directions are drawn."))


@main.command(cls=_LazyCommand, complete=_generate_params)
@click.option("--dim", "-d", type=int, required=True, help="Dimension d.")
@click.option("--rank", "-r", type=int, required=True, help="Number of true components r.")
@click.option("--order", "-l", type=int, default=3, show_default=True, help="Tensor order l >= 2.")
@click.option("--weights", default="equal", show_default=True,
              help="'equal', 'geometric' or a comma-separated list of r positive numbers.")
@click.option("--spread", type=float, default=10.0, show_default=True,
              help="Largest over smallest weight for --weights geometric.")
@click.option("--coherence", type=float, default=0.5, show_default=True,
              help="Pairwise cosine for --kind coherent.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--output", "-o", required=True, help="Output .npz file.")
def generate(dim: int, rank: int, order: int, kind: Kind, weights: str, spread: float, coherence: float,
             seed: int, output: str) -> None:
    """Generate a random rank-r symmetric target tensor (factored .npz)."""
    from .io import save
    from .tensors.targets import make_target

    out = _output_path(output, ".npz")
    target = make_target(dim, rank, order, kind=kind, weights=_parse_weights(weights),
                         spread=spread, coherence=coherence, seed=seed)
    save(out, target)
    click.echo(f"wrote {out}: rank {rank}, dim {dim}, order {order}, norm {target.norm():.4g}", err=True)


#: Methods whose options get no flag: polish needs ``init=`` (use ``--recover --polish``).
_NOT_CLI = ("polish",)


def _decompose_params(params: list[click.Parameter]) -> None:
    """``--method``'s help and one flag per method option (:func:`method_flags`), before ``--recover``."""
    from .api import methods

    names = [m for m in methods() if m not in _NOT_CLI]
    method = next(p for p in params if p.name == "method")
    method.help = f"One of: {', '.join(names)} (hyphens or underscores)."
    at = next(i for i, p in enumerate(params) if p.name == "recover")
    params[at:at] = method_flags(names)


def method_flags(names: list[str]) -> list[click.Option]:
    """One click option per option of the methods ``names``: type, choices and help from the models.

    The help says which methods take the option and, for each, its bound and default.
    """
    from .solvers.options import bound, default_text, fields_by_name, flag_kind

    flags = []
    for name, uses in fields_by_name(names).items():
        groups: dict[tuple[str, str, str], list[str]] = {}
        for method, field in uses:
            groups.setdefault((field.description or "", bound(field), default_text(field)), []).append(method)
        parts = []
        for (text, limit, default), takers in groups.items():
            scope = "all methods" if len(takers) == len(names) else ", ".join(takers)
            shown = [limit] * bool(limit) + [f"default: {default}"] * (default != "none")
            parts.append(f"{scope}: {text}" + (f" [{'; '.join(shown)}]" if shown else ""))
        kind = flag_kind(uses[0][1])
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            flags.append(click.Option([f"{flag}/--no-{flag[2:]}", name], default=None, help=" ".join(parts)))
        else:
            click_type = click.Choice(kind) if isinstance(kind, tuple) else kind
            flags.append(click.Option([flag, name], type=click_type, default=None, help=" ".join(parts)))
    return flags


def _solve(target: Target, components: int, method: str, seed: int, given: dict[str, Any],
           polish_steps: int | None) -> DecompositionResult:
    """Run the solver, or with ``polish_steps`` the descent -> recover -> polish pipeline, with a
    progress bar; Ctrl-C exits 130 with one line."""
    from .api import decompose as _decompose
    from .pipeline import pipeline
    from .tensors.dense import DenseSymTensor
    from .tensors.symcp import SymCP

    bar = Progress(step_budget(method, given), method.replace("-", "_"))
    try:
        if polish_steps is not None:
            if not isinstance(target, (SymCP, DenseSymTensor)):  # what the polish would say after the descent
                raise OvertensorError(f"target must be a SymCP or DenseSymTensor, got {type(target).__name__}")
            result = pipeline(target, components, method, seed=seed, progress=bar, polish_steps=polish_steps,
                              **given)
        else:
            result = _decompose(target, components, method, seed=seed, progress=bar, **given)
        if result.info.get("interrupted"):  # the descent methods return where a Ctrl-C stopped them
            raise KeyboardInterrupt
        return result
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"interrupted after {bar.steps} steps; nothing written", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        bar.close()


def _echo_pipeline(result: DecompositionResult, method: str, components: int, target: Target) -> None:
    """The two summary lines of ``--recover --polish``: the descent, then the polish."""
    info = result.info
    squeezed = f" (compressed to dim {info['compressed_dim']})" if info["compressed_dim"] < target.dim else ""
    click.echo(f"{method}: relative error {info['descent_relative_error']:.3e} in {info['descent_steps']} "
               f"steps{squeezed}, m = {components}, order {target.order}, dim {target.dim}")
    click.echo(f"polish: relative error {result.relative_error:.3e} with {result.model.rank} components "
               f"(stopped by {info['polish_stop']}; {result.seconds:.2f} s in all)")


@main.command(cls=_LazyCommand, complete=_decompose_params)
@click.argument("target_file", metavar="FILE")
@click.option("--components", "-m", type=int, required=True, help="Number of components m.")
@click.option("--method", default="gd", show_default=True, help="The method (its names: --help).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--moment-order", type=int, default=None,
              help="FILE is a 2-D .npy of samples (n, d): decompose their order-L empirical moment, "
                   "read in chunks from a memory map.")
@click.option("--recover", is_flag=True,
              help="Merge the m components into a rank estimate r^ (written to -o; matched against a factored target).")
@click.option("--polish", is_flag=True,
              help="With --recover: the exact-answer pipeline. A dense target is first compressed to its column "
                   "space; after the method and the recovery, Levenberg-Marquardt fits the r^ components at "
                   "m = r^ (superlinear convergence on an exactly low-rank target), adds the residual's leading "
                   "rank-one term while the fit is not exact, drops components while it stays exact, and "
                   "reports the error of the dense (or telescoped) residual.")
@click.option("--polish-steps", type=int, default=None,
              help="With --recover: Levenberg-Marquardt iteration budget of the polish; implies --polish "
                   "[default: 100].")
@click.option("--output", "-o", default=None, help="Write the learned components to this .npz file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def decompose(target_file: str, components: int, method: str, seed: int, output: str | None, as_json: bool,
              recover: bool, polish: bool, polish_steps: int | None, moment_order: int | None,
              **options: Any) -> None:
    """Decompose the tensor in FILE (.npz factored or .npy dense; samples with --moment-order) with m components.

    Method options left unset take the method's defaults; setting one the
    method does not take is an error. Each option's help says which methods
    take it (docs/options.md has the tables).
    """
    import numpy as np

    from .analysis.recovery import match
    from .analysis.recovery import recover as _recover
    from .io import load, save
    from .tensors.moment import moment_tensor
    from .tensors.symcp import SymCP

    # checked before the solve, so that a finished run is never lost to an unwritable -o
    out = _output_path(output, ".npz", target_file) if output else None
    if components < 1:
        raise OvertensorError(f"--components must be >= 1, got {components}")
    if polish_steps is not None and polish_steps < 0:
        raise OvertensorError(f"--polish-steps must be >= 0, got {polish_steps}")
    if (polish or polish_steps is not None) and not recover:
        flag = "--polish" if polish_steps is None else f"--polish-steps {polish_steps}"
        raise OvertensorError(f"{flag} needs --recover")
    polish = polish or polish_steps is not None
    target = load(target_file) if moment_order is None else moment_tensor(target_file, moment_order)
    given = {k: v for k, v in options.items() if v is not None}
    if given.get("signs", "half") != "half":
        given["signs"] = _parse_signs(given["signs"])
    result = _solve(target, components, method, seed, given,
                    (100 if polish_steps is None else polish_steps) if polish else None)
    model = result.model
    summary = {"target": str(target_file), "order": target.order, "dim": target.dim, **result.summary()}
    if recover:
        model = model if polish else _recover(model)
        summary["recovered_components"] = model.rank
        if isinstance(target, SymCP):  # a factored target is its own ground truth
            summary.update(match(model, target).summary())
    if out is not None:
        save(out, model)
    if as_json:
        click.echo(json.dumps(summary))
        return
    if polish:
        _echo_pipeline(result, method, components, target)
    else:
        status = "converged" if result.converged else "did not converge"
        click.echo(
            f"{result.method}: {status} to relative error {result.relative_error:.3e} in {result.steps} steps "
            f"({result.seconds:.2f} s), m = {components}, order {target.order}, dim {target.dim}"
        )
    masses = np.sort(result.model.weights)[::-1]
    shown = ", ".join(f"{w:.3g}" for w in masses[:10])
    click.echo(f"largest component weights: {shown}{' ...' if len(masses) > 10 else ''}")
    if recover:
        found = f"recovered {summary['recovered_components']} components"
        if "min_cosine" in summary:
            found += (f"; against the target: min cosine {summary['min_cosine']:.6f}, "
                      f"missing {summary['missing']}, spurious {summary['spurious']}")
        click.echo(found)
    if out is not None:
        click.echo(f"wrote {out}")


@main.command()
@click.argument("spec_file", metavar="SPEC")
@click.option("--store", "store_path", required=True, help="SQLite result store (created if missing).")
@click.option("--workers", type=int, default=None, help="Local worker processes [default: number of cores].")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://127.0.0.1:8786).")
@click.option("--max-batch", type=int, default=32, show_default=True,
              help="Most seeds of one config solved in one batched call.")
def sweep(spec_file: str, store_path: str, workers: int | None, scheduler: str | None, max_batch: int) -> None:
    """Run every (config, seed) of the experiment SPEC (YAML) not yet in the store.

    Each finished run is committed at once: an interrupted sweep (Ctrl-C,
    kill, a lost scheduler) resumes where it stopped when run again.
    """
    import signal
    import threading

    from .experiments import runner
    from .experiments.spec import load_spec
    from .experiments.store import Store

    # Ctrl-C only sets `stop`; the sweep stops at its next check, never inside a commit or the pool.
    # After the last check Ctrl-C is ignored (_ignore_ctrl_c): Python's exit resets a Python-level
    # handler to the default, which a late Ctrl-C would turn into status -2 after the summary line.
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():  # signals can be caught only there
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    spec = load_spec(spec_file)  # before the store is touched: a bad spec creates nothing
    for name, value in (("--workers", workers), ("--max-batch", max_batch)):
        if value is not None and value < 1:
            raise OvertensorError(f"{name} must be >= 1, got {value}")
    if scheduler is not None and workers is not None:
        raise OvertensorError("--workers is for the local pool; with --scheduler the cluster's workers run")
    runs = {(r.key, r.seed) for r in spec.expand()}
    # a foreign file or an edited spec is refused before any worker starts (an empty file is a new store)
    if Path(store_path).is_file() and Path(store_path).stat().st_size:
        with Store(store_path) as existing:
            runner.check_unchanged(spec, existing)
    pool = (runner.dask_executor(scheduler, quiet=True) if scheduler
            else runner.local_pool(workers or os.cpu_count() or 1))
    def kept() -> str:
        return (f"{done} of {len(runs)} runs done ({done - before} in this sweep), kept in {store_path}; "
                "run the same command to resume")

    with pool as (executor, n_workers), Store(store_path, create=True) as store:
        before = len(runs & store.done())
        bar = Progress(len(runs), spec.name, unit="run", initial=before)
        try:
            runner.sweep(spec, store, executor, workers=n_workers, max_batch=max_batch,
                         progress=bar, stop=stop)
        except (KeyboardInterrupt, runner.WorkersLost) as exc:
            bar.close()
            done = len(runs & store.done())
            _ignore_ctrl_c()
            if isinstance(exc, KeyboardInterrupt):
                click.echo(f"interrupted: {kept()}", err=True)
                raise click.exceptions.Exit(130) from None
            raise OvertensorError(f"{exc}; {kept()}") from None
        bar.close()
        done = len(runs & store.done())
        errors = sum(1 for r in store.records(history=False) if r.status == "error" and (r.key, r.seed) in runs)
    _ignore_ctrl_c()  # a Ctrl-C from here on changes nothing: the sweep is done
    if stop.is_set():  # Ctrl-C while the pool shut down after the last run: still an interrupted sweep
        click.echo(f"interrupted: {kept()}", err=True)
        raise click.exceptions.Exit(130)
    click.echo(f"{spec.name}: {done} of {len(runs)} runs in {store_path} ({done - before} new"
               f"{f', {errors} failed' if errors else ''})", err=True)


def _ignore_ctrl_c() -> None:
    """Ignore SIGINT for the rest of the process (the main thread only can set it).

    Python's exit restores the default for a Python-level handler but leaves an ignored
    signal ignored, so a Ctrl-C that lands while the interpreter shuts down cannot end
    the process with status -2 after its last line was printed.
    """
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@main.command()
@click.argument("store_file", metavar="STORE")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "parquet"]), default="csv", show_default=True)
@click.option("--output", "-o", default=None, help="Output file [default: stdout; parquet needs a file].")
def results(store_file: str, fmt: str, output: str | None) -> None:
    """Print the runs of STORE as a table, one row per run (config fields as columns, then metrics)."""
    from .experiments.store import Store
    from .experiments.table import tidy, write_table
    from .io import atomic_path, atomic_write

    out = _output_path(output, f".{fmt}", store_file) if output else None
    with Store(store_file) as store:
        rows = tidy(store.records(history=False))
    if out is None:
        click.echo(write_table(rows, fmt, None), nl=False)
    elif fmt == "parquet":  # written by pyarrow to a path: give it the temporary one
        with atomic_path(out) as tmp:
            write_table(rows, fmt, tmp)
    else:
        text = write_table(rows, fmt, None) or ""
        atomic_write(out, lambda fh: fh.write(text.encode()))


@main.command()
@click.argument("store_file", metavar="STORE")
@click.option("--output", "-o", "out_dir", required=True, help="Folder for report.html and the figures.")
@click.option("--epsilon", type=float, default=None,
              help="Success threshold on the relative error [default: each spec's epsilon, else 1e-2].")
def report(store_file: str, out_dir: str, epsilon: float | None) -> None:
    """Draw the figures of every experiment in STORE and write an HTML report into a folder."""
    import numpy as np

    from .experiments.report import write_report
    from .experiments.store import Store
    from .io import check_output

    if epsilon is not None and not (np.isfinite(epsilon) and epsilon > 0):
        raise OvertensorError(f"--epsilon must be a finite number > 0, got {epsilon}")
    check_output(out_dir, folder=True, inputs=[store_file])
    with Store(store_file) as store:
        files = write_report(store, out_dir, epsilon=epsilon)
    click.echo(f"wrote {files.html} and {len(files.figures)} figure files", err=True)

# -- fitting latent-variable models (overtensor.models; scikit-learn loads only here) --------------
@main.group(cls=_Group)
def fit() -> None:
    """Fit a latent-variable model to samples by the method of moments."""


def _parse_count(text: str, expected: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise OvertensorError(f"--components must be {expected}, got {text!r}") from None


def _fit_and_save(model: Any, data_file: str, output: str, as_json: bool) -> dict[str, Any]:
    """Fit ``model`` to the memory-mapped DATA, save it to ``-o`` (checked first); the JSON-ready summary."""
    import time

    from .models import save as save_model

    out = _output_path(output, ".npz", data_file)
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(data_file)  # a path: memory-mapped by the moment target
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    save_model(out, model)
    return {"model": type(model).__name__, "data": str(data_file), "output": str(out),
            "n_features": int(model.n_features_in_), "n_components": int(model.n_components_),
            "seconds": wall, "cpu_seconds": cpu}


@fit.command("gmm")
@click.argument("data_file", metavar="DATA.npy")
@click.option("--output", "-o", required=True, help="Output .npz model file.")
@click.option("--components", "-k", default="auto", show_default=True, help="'auto' or the number of components.")
@click.option("--whiten/--no-whiten", default=True, show_default=True,
              help="Decompose the whitened third moment (fast) or the raw one.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--em-steps", type=int, default=0, show_default=True,
              help="EM iterations from the moment estimate (one pass over the data each).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def fit_gmm(data_file: str, output: str, components: str, whiten: bool, seed: int, em_steps: int,
            as_json: bool) -> None:
    """Fit a spherical Gaussian mixture to the samples in DATA.npy (n, d)."""
    import numpy as np

    from .models import SphericalGMM

    count = "auto" if components == "auto" else _parse_count(components, "'auto' or an integer")
    model = SphericalGMM(count, whiten=whiten, seed=seed, em_steps=em_steps)
    summary = _fit_and_save(model, data_file, output, as_json)
    summary.update(weights=model.weights_.tolist(), sigma2=float(model.variance_),
                   mean_norms=np.linalg.norm(model.means_, axis=1).tolist())
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"SphericalGMM: {model.n_components_} components in d = {model.n_features_in_}, sigma2 "
               f"{model.variance_:.4g} ({summary['seconds']:.2f} s); weights "
               f"{', '.join(f'{w:.3g}' for w in model.weights_)}")
    click.echo(f"wrote {summary['output']}")


@fit.command("ica")
@click.argument("data_file", metavar="DATA.npy")
@click.option("--output", "-o", required=True, help="Output .npz model file.")
@click.option("--components", "-k", default=None, help="Number of sources [default: d].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def fit_ica(data_file: str, output: str, components: str | None, seed: int, as_json: bool) -> None:
    """Fit ICA (sources of either kurtosis sign) to the samples in DATA.npy (n, d)."""
    from .models import MomentICA

    model = MomentICA(None if components is None else _parse_count(components, "an integer"), seed=seed)
    summary = _fit_and_save(model, data_file, output, as_json)
    summary["kurtosis"] = model.kurtosis_.tolist()
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"MomentICA: {model.n_components_} sources in d = {model.n_features_in_} "
               f"({summary['seconds']:.2f} s); excess kurtosis {', '.join(f'{k:.3g}' for k in model.kurtosis_)}")
    click.echo(f"wrote {summary['output']}")


if __name__ == "__main__":  # pragma: no cover
    main()
