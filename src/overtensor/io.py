"""Reading and writing tensors: factored ``.npz`` (weights, vectors, order) and dense ``.npy``.

Files are always read with ``allow_pickle=False`` and written atomically
(a temporary file in the same folder, then a rename), so an interrupted
write never leaves a half-written file behind. :func:`check_output` is the
one check of an output path; the CLI runs it before any long computation.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np

from .tensors.dense import DenseSymTensor, Tensor
from .errors import OvertensorError
from .result import RESULT_FORMAT
from .tensors.symcp import SymCP

__all__ = ["load", "save", "atomic_write", "atomic_path", "check_output"]

FACTORED_KEYS = ("weights", "vectors", "order")
#: The entry of a fitted-model file (:mod:`overtensor.models.io`), which is not a tensor.
MODEL_KEY = "overtensor_model"
#: First bytes of each format: ``.npy`` files start with this header, ``.npz`` files are zip archives.
MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK"}

PathLike = str | os.PathLike[str]


def _writable_folder(folder: Path, out: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OvertensorError(f"cannot write {out}: folder {folder} is not writable")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # either one missing or unreadable: they cannot be one file
        return False


def check_output(path: PathLike, *, suffix: str | None = None, inputs: Sequence[PathLike] = (),
                 folder: bool = False) -> Path:
    """Check that ``path`` can be written, before anything is computed for it.

    Parameters
    ----------
    path : the output file, or with ``folder=True`` the output folder (created if missing)
    suffix : the file ending the output must have, e.g. ``".npz"``
    inputs : files the command reads; the output may not be any of them
    folder : whether the output is a folder

    Returns
    -------
    Path of the output.

    Raises
    ------
    OvertensorError
        If the suffix is wrong, the output is (or is inside) a file where a folder is
        needed or a folder where a file is needed, its folder is missing or not
        writable, or it is one of ``inputs``.
    """
    out = Path(path)
    if suffix is not None and out.suffix != suffix:
        raise OvertensorError(f"output file must end in {suffix}, got {out}")
    for src in inputs:
        if _same_file(out, Path(src)):
            raise OvertensorError(f"output {out} is the input {src}; refusing to overwrite it, choose another name")
    if folder:
        if out.exists() and not out.is_dir():
            raise OvertensorError(f"{out} is a file; the output must be a folder (created if missing)")
        base = next(p for p in (out, *out.parents) if p.exists())  # the folder mkdir starts from
        if not base.is_dir():
            raise OvertensorError(f"cannot create {out}: {base} is not a folder")
        _writable_folder(base, out)
        return out
    if out.is_dir():
        raise OvertensorError(f"{out} is a folder; the output must be a file{f' ending in {suffix}' if suffix else ''}")
    parent = out.parent
    if not parent.exists():
        raise OvertensorError(f"cannot write {out}: folder {parent} does not exist")
    if not parent.is_dir():
        raise OvertensorError(f"cannot write {out}: {parent} is not a folder")
    _writable_folder(parent, out)
    return out


def _umask() -> int:
    """The process umask (Linux reports it in /proc; elsewhere set and restore it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds.

    The file gets the mode an ordinary ``open`` would give it: that of the file it
    replaces, else ``0o666`` less the umask (``mkstemp`` alone makes it ``0o600``).
    """
    out = check_output(path)
    mode = out.stat().st_mode & 0o7777 if out.is_file() else 0o666 & ~_umask()
    try:
        fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise OvertensorError(f"cannot write {out}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        os.close(fd)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OvertensorError(f"cannot write {out}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(fileobj)`` on a temporary file, then rename it to ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)


def save(path: PathLike, tensor: Tensor) -> None:
    """Write a SymCP to ``.npz`` or a DenseSymTensor to ``.npy``, atomically.

    Examples
    --------
    >>> import overtensor as ot
    >>> target = ot.make_target(dim=10, rank=3, order=3, seed=0)
    >>> ot.save("target.npz", target)                      # what `overtensor decompose` reads
    >>> ot.residual_norm(ot.load("target.npz"), target)  # the same arrays, bit for bit
    0.0
    >>> ot.save("target.npy", target)
    Traceback (most recent call last):
        ...
    overtensor.errors.OvertensorError: a factored tensor is saved as .npz, got target.npy
    """
    path = Path(path)
    if isinstance(tensor, SymCP):
        if path.suffix != ".npz":
            raise OvertensorError(f"a factored tensor is saved as .npz, got {path}")
        atomic_write(path, lambda fh: np.savez(fh, weights=tensor.weights, vectors=tensor.vectors,
                                               order=np.int64(tensor.order)))
    elif isinstance(tensor, DenseSymTensor):
        if path.suffix != ".npy":
            raise OvertensorError(f"a dense tensor is saved as .npy, got {path}")
        atomic_write(path, lambda fh: np.save(fh, tensor.array, allow_pickle=False))
    else:
        raise OvertensorError(f"cannot save a {type(tensor).__name__}; expected SymCP or DenseSymTensor")


def _check_magic(path: Path) -> None:
    """Refuse a file whose first bytes are not those of its suffix's NumPy format."""
    with open(path, "rb") as fh:
        head = fh.read(len(MAGIC[".npy"]))
    if head.startswith(MAGIC[path.suffix]):
        return
    other = ".npz" if path.suffix == ".npy" else ".npy"
    if head.startswith(MAGIC[other]):
        raise OvertensorError(f"{path} holds a NumPy {other} file, not {path.suffix}; rename it to "
                              f"{path.with_suffix(other).name}")
    raise OvertensorError(f"{path} is not a NumPy {path.suffix} file")


def _load_npz(path: Path) -> SymCP:
    with np.load(path, allow_pickle=False) as data:
        if "header" in data.files and RESULT_FORMAT in str(data["header"]):
            raise OvertensorError(f"{path} is a saved decomposition result, not a target; read it with "
                                  "overtensor.DecompositionResult.load (its .model is a SymCP)")
        if MODEL_KEY in data.files:
            raise OvertensorError(f"{path} holds a fitted {data[MODEL_KEY]} model, not a tensor; read it with "
                                  "overtensor.models.load")
        missing = [k for k in FACTORED_KEYS if k not in data.files]
        if missing:
            raise OvertensorError(
                f"{path}: missing array {missing[0]!r} (a factored tensor needs "
                f"{', '.join(FACTORED_KEYS)}; found {', '.join(data.files) or 'none'})"
            )
        order = data["order"]
        if order.shape != () or not np.issubdtype(order.dtype, np.integer):
            raise OvertensorError(f"{path}: 'order' must be an integer scalar, got {order.dtype} {order.shape}")
        try:
            return SymCP(data["weights"], data["vectors"], int(order))
        except OvertensorError as exc:
            raise OvertensorError(f"{path}: {exc}") from None


def _load_npy(path: Path) -> DenseSymTensor:
    array = np.load(path, allow_pickle=False)
    try:
        return DenseSymTensor(array)
    except OvertensorError as exc:
        raise OvertensorError(f"{path}: {exc}") from None


def load(path: PathLike) -> Tensor:
    """Read a tensor: ``.npz`` → SymCP, ``.npy`` → DenseSymTensor (symmetry checked).

    Examples
    --------
    >>> import overtensor as ot
    >>> ot.save("noisy.npy", ot.add_noise(ot.make_target(6, 2, 3), 0.01))
    >>> ot.load("noisy.npy")
    DenseSymTensor(dim=6, order=3)
    >>> ot.load("missing.npz")
    Traceback (most recent call last):
        ...
    overtensor.errors.OvertensorError: no such file: missing.npz
    """
    path = Path(path)
    if not path.exists():
        raise OvertensorError(f"no such file: {path}")
    if path.is_dir():
        raise OvertensorError(f"{path} is a folder, not a tensor file")
    if path.suffix not in MAGIC:
        raise OvertensorError(f"unknown file type {path.suffix!r} for {path}; expected .npz (factored) or .npy (dense)")
    try:
        _check_magic(path)
        return _load_npz(path) if path.suffix == ".npz" else _load_npy(path)
    except OvertensorError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise OvertensorError(f"cannot read {path}: {exc}") from None
