"""overtensor: over-parameterized symmetric tensor decomposition by gradient descent.

Implements Wang, Wu, Lee, Ma, Ge, *Beyond Lazy Training for Over-parameterized
Tensor Decomposition* (NeurIPS 2020) with exact factored mathematics.
"""

from __future__ import annotations

from .analysis.recovery import Match, match, recover
from .api import check_options, decompose, decompose_batch, methods
from .errors import OvertensorError
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
