"""Fitted models on disk: one ``.npz`` with the class, its hyper-parameters and its learned arrays.

The file holds an ``overtensor_model`` entry naming the class, which
:func:`overtensor.load` recognizes to refuse it as not a tensor; everything is
read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OvertensorError
from ..io import MODEL_KEY, atomic_write
from .gmm import SphericalGMM
from .ica import MomentICA

__all__ = ["save", "load", "MODEL_KEY"]

#: The learned attributes saved for each class (``MODEL_KEY`` names the class).
_CLASSES: dict[str, Any] = {"SphericalGMM": SphericalGMM, "MomentICA": MomentICA}
_FITTED = {"SphericalGMM": ("means_", "weights_", "variance_", "n_components_", "n_features_in_", "candidates_"),
           "MomentICA": ("components_", "mixing_", "kurtosis_", "mean_", "n_components_", "n_features_in_")}


def save(path: str | os.PathLike[str], model: SphericalGMM | MomentICA) -> None:
    """Write a fitted model to ``path`` (``.npz``), atomically.

    Examples
    --------
    >>> import numpy as np
    >>> from overtensor.models import SphericalGMM, load, save
    >>> X = np.random.default_rng(0).standard_normal((2_000, 3)) + [5.0, 0.0, 0.0]
    >>> gmm = SphericalGMM(1).fit(X)
    >>> save("gmm.npz", gmm)                               # `overtensor fit gmm ... -o gmm.npz` too
    >>> back = load("gmm.npz")
    >>> type(back).__name__, np.array_equal(back.means_, gmm.means_), back.get_params() == gmm.get_params()
    ('SphericalGMM', True, True)

    Raises
    ------
    OvertensorError
        For a model of another type, one not fitted, or a path not ending in ``.npz``.
    """
    name = type(model).__name__
    if name not in _CLASSES:
        raise OvertensorError(f"cannot save a {name}; expected one of {', '.join(_CLASSES)}")
    if Path(path).suffix != ".npz":
        raise OvertensorError(f"a model is saved as .npz, got {path}")
    missing = [a for a in _FITTED[name] if not hasattr(model, a)]
    if missing:
        raise OvertensorError(f"cannot save an unfitted {name} (no {missing[0]}); call fit first")
    arrays = {a: np.asarray(getattr(model, a)) for a in _FITTED[name]}
    params = json.dumps(model.get_params())
    atomic_write(path, lambda fh: np.savez(fh, **{MODEL_KEY: np.array(name), "params": np.array(params)}, **arrays))


def load(path: str | os.PathLike[str]) -> SphericalGMM | MomentICA:
    """Read a model written by :func:`save`: the estimator with its hyper-parameters and learned attributes."""
    path = Path(path)
    if not path.is_file():
        raise OvertensorError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if MODEL_KEY not in getattr(data, "files", ()):
                raise OvertensorError(f"{path} is not an overtensor model file (no {MODEL_KEY!r} entry)")
            name = str(data[MODEL_KEY])
            if name not in _CLASSES:
                raise OvertensorError(f"{path}: unknown model {name!r}; expected one of {', '.join(_CLASSES)}")
            model = _CLASSES[name](**json.loads(str(data["params"])))
            for attr in _FITTED[name]:
                value = data[attr]
                setattr(model, attr, value.item() if value.ndim == 0 else value)
    except OvertensorError:
        raise
    except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise OvertensorError(f"cannot read model {path}: {' '.join(str(exc).split())}") from None
    return model
