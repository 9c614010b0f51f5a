"""Latent-variable models fitted by the method of moments (DESIGN.md §9), scikit-learn style."""

from __future__ import annotations

from .gmm import MomentGMM

__all__ = ["MomentGMM"]
