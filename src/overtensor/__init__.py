"""overtensor: over-parameterized symmetric tensor decomposition by gradient descent.

Implements Wang, Wu, Lee, Ma, Ge, *Beyond Lazy Training for Over-parameterized
Tensor Decomposition* (NeurIPS 2020) with exact factored mathematics.

The public names load on first use (PEP 562 ``__getattr__``), so ``import overtensor``
and ``overtensor --help`` import neither NumPy-heavy modules nor pydantic until a name
such as :func:`decompose` is touched.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from .errors import OvertensorError

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from .analysis.recovery import Match, match, recover
    from .api import check_options, decompose, decompose_batch, methods
    from .io import load, save
    from .pipeline import pipeline, polish
    from .result import DecompositionResult, History
    from .tensors.compress import Compression, compress
    from .tensors.corrections import CorrectionG, CorrectionS, TensorSum, transform
    from .tensors.dense import DenseSymTensor, Tensor
    from .tensors.moment import MomentTensor, moment_tensor
    from .tensors.residual import relative_residual, residual_norm
    from .tensors.symcp import SymCP
    from .tensors.targets import add_noise, make_target

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_LAZY = {
    **dict.fromkeys(["check_options", "decompose", "decompose_batch", "methods"], ".api"),
    **dict.fromkeys(["Compression", "compress"], ".tensors.compress"),
    **dict.fromkeys(["DenseSymTensor", "Tensor"], ".tensors.dense"),
    **dict.fromkeys(["load", "save"], ".io"),
    **dict.fromkeys(["pipeline", "polish"], ".pipeline"),
    **dict.fromkeys(["Match", "match", "recover"], ".analysis.recovery"),
    **dict.fromkeys(["relative_residual", "residual_norm"], ".tensors.residual"),
    **dict.fromkeys(["DecompositionResult", "History"], ".result"),
    **dict.fromkeys(["CorrectionG", "CorrectionS", "TensorSum", "transform"], ".tensors.corrections"),
    **dict.fromkeys(["MomentTensor", "moment_tensor"], ".tensors.moment"),
    "SymCP": ".tensors.symcp",
    **dict.fromkeys(["add_noise", "make_target"], ".tensors.targets"),
}
_SUBPACKAGES = ("analysis", "api", "backend", "cli", "experiments", "io", "models", "pipeline", "progress",
                "result", "solvers", "tensors", "validation")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'overtensor' has no attribute {name!r}")
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """The package module: a submodule that shares a public name's name stays behind that name.

    Importing ``overtensor.pipeline`` binds the attribute ``pipeline`` of the package to the
    submodule; ``overtensor.pipeline`` is the function (as an eager ``from .pipeline import
    pipeline`` made it), so the function is bound instead.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType) and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "SymCP",
    "DenseSymTensor",
    "Tensor",
    "MomentTensor",
    "moment_tensor",
    "TensorSum",
    "CorrectionS",
    "CorrectionG",
    "transform",
    "make_target",
    "add_noise",
    "decompose",
    "decompose_batch",
    "methods",
    "check_options",
    "DecompositionResult",
    "History",
    "recover",
    "polish",
    "pipeline",
    "compress",
    "Compression",
    "residual_norm",
    "relative_residual",
    "match",
    "Match",
    "load",
    "save",
    "OvertensorError",
]
