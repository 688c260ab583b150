"""The two ends of inference, written once: frames to the network's input (`Preprocess`, derived
from a checkpoint's input description; predict, evaluate, INT8 calibration and the benchmarks use
it) and logits to uint8 class ids (`to_ids`).

Usage::

    pre = Preprocess(ckpt["input"])
    x = pre([frame_a, frame_b])        # any sizes -> float NCHW at the network size
    ids = to_ids(logits)               # (N,C,H,W) -> (N,H,W) uint8
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..data.samples import resize_image, to_tensor
from ..errors import InputError


class Preprocess:
    """Frames to the network's input, as a checkpoint's input description says: RGB, resized to
    `size` with `resize`, floats in `range`."""

    def __init__(self, description: dict[str, Any]) -> None:
        self.size: tuple[int, int] = (int(description["size"][0]), int(description["size"][1]))
        self.resize_mode: str = description.get("resize", "bilinear")
        self.low, self.high = (float(v) for v in description.get("range", (0.0, 1.0)))

    def resize(self, image: np.ndarray) -> np.ndarray:
        """One HxWx3 uint8 frame at the network size."""
        return resize_image(image, self.size, self.resize_mode)

    def tensor(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 NxHxWx3 frames already at the network size -> float NCHW in the input range."""
        x = to_tensor(images)
        return x if (self.low, self.high) == (0.0, 1.0) else x.mul_(self.high - self.low).add_(self.low)

    def __call__(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Frames of any size -> one float NCHW batch at the network size."""
        return self.tensor(np.stack([self.resize(as_rgb_uint8(im)) for im in images]))


def to_ids(logits: torch.Tensor) -> np.ndarray:
    """(N,C,H,W) logits -> (N,H,W) uint8 class ids (the arg max over classes)."""
    return logits.argmax(1).cpu().numpy().astype(np.uint8)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Accept uint8 or float-in-[0,1] arrays, grey (HxW), RGB or RGBA; return HxWx3 uint8."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InputError(None, f"image array of shape {image.shape} is not HxW, HxWx3 or HxWx4",
                         "pass an RGB frame as a numpy array")
    image = image[:, :, :3]
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating):
            image = np.clip(np.rint(image * 255.0), 0, 255)
        image = image.astype(np.uint8)
    return image
