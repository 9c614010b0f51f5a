"""Latent-variable models fitted by the method of moments (DESIGN.md §9), scikit-learn style.

:class:`SphericalGMM` (spherical Gaussian mixture) and :class:`MomentICA`;
:func:`save` / :func:`load` keep a fitted one in an ``.npz`` file.
"""

from __future__ import annotations

from .gmm import SphericalGMM
from .ica import MomentICA, amari_distance
from .io import load, save

__all__ = ["SphericalGMM", "MomentICA", "amari_distance", "load", "save"]
