"""Turning id masks into pictures: class colours, image/colour blends and a legend of the classes
present drawn on a frame (NumPy and Pillow, no figures).

Usage: ``colors = colorize(ids, table); blend = draw_legend(overlay(rgb, colors, 0.5), ids, table)``
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


def draw_legend(image: np.ndarray, ids: np.ndarray, table: ClassTable) -> np.ndarray:
    """The image with a box in its top-left corner listing the classes present in `ids`, largest
    first, each with its colour."""
    from PIL import Image, ImageDraw, ImageFont
    present, counts = np.unique(ids, return_counts=True)
    order = [int(i) for i in present[np.argsort(-counts)] if i < table.num_classes]
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    size = max(10, min(image.shape[:2]) // 30)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed-size bitmap font
        font = ImageFont.load_default()
    line = size + 4
    width = max(draw.textlength(table.names[i], font=font) for i in order) + line + 12 if order else 0
    rows = order[: max(1, (image.shape[0] - 8) // line)]
    if rows:
        draw.rectangle([4, 4, 4 + width, 8 + line * len(rows)], fill=(0, 0, 0))
    for k, i in enumerate(rows):
        y = 6 + k * line
        draw.rectangle([8, y + 2, 8 + size, y + 2 + size], fill=tuple(int(c) for c in table.colors[i]),
                       outline=(255, 255, 255))
        draw.text((12 + size + 4, y), table.names[i], fill=(255, 255, 255), font=font)
    return np.asarray(canvas)
