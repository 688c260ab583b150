"""Turning id masks into pictures: class colours and image/colour blends (NumPy only, no figures).

Usage: ``colors = colorize(ids, table); blend = overlay(rgb, colors, alpha=0.5)``
"""
from __future__ import annotations

import numpy as np

from ..classes import ClassTable


def colorize(mask: np.ndarray, table: ClassTable) -> np.ndarray:
    """HxW ids -> HxWx3 uint8 colours (ids past the table are black)."""
    return table.palette()[mask]


def overlay(image: np.ndarray, colors: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend an HxWx3 uint8 image with its colour mask."""
    return (image.astype(np.float32) * (1 - alpha) + colors.astype(np.float32) * alpha).round().astype(np.uint8)
