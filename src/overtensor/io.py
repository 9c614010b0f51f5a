"""Reading and writing tensors: factored ``.npz`` (weights, vectors, order) and dense ``.npy``.

Files are always read with ``allow_pickle=False`` and written atomically
(a temporary file in the same folder, then a rename), so an interrupted
write never leaves a half-written file behind.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from .dense import DenseSymTensor, Tensor
from .errors import OvertensorError
from .symcp import SymCP

__all__ = ["load", "save", "atomic_write"]

FACTORED_KEYS = ("weights", "vectors", "order")


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(fileobj)`` on a temporary file, then rename it to ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OvertensorError(f"cannot write {path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(path: str | os.PathLike[str], tensor: Tensor) -> None:
    """Write a SymCP to ``.npz`` or a DenseSymTensor to ``.npy``, atomically."""
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


def load(path: str | os.PathLike[str]) -> Tensor:
    """Read a tensor: ``.npz`` → SymCP, ``.npy`` → DenseSymTensor (symmetry checked)."""
    path = Path(path)
    if not path.exists():
        raise OvertensorError(f"no such file: {path}")
    if path.is_dir():
        raise OvertensorError(f"{path} is a folder, not a tensor file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
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
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            try:
                return DenseSymTensor(array)
            except OvertensorError as exc:
                raise OvertensorError(f"{path}: {exc}") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, OvertensorError):
            raise
        raise OvertensorError(f"cannot read {path}: {exc}") from None
    raise OvertensorError(f"unknown file type {path.suffix!r} for {path}; expected .npz (factored) or .npy (dense)")
