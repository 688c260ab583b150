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
from torch.nn import functional as F

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


CLASS_CHUNK = 2  # classes upsampled at a time: a 8900x8900 frame needs 0.6 GB per chunk, not 81 GB at once


def upsample_ids(logits: torch.Tensor, size: tuple[int, int] | None) -> np.ndarray:
    """(N,C,h,w) logits -> (N,H,W) uint8 ids of the logits upsampled (bilinear) to `size`: the same ids
    as upsampling all the logits and taking the arg max, but a few classes at a time, keeping the
    running maximum, so that a huge frame needs memory for two classes, not all of them."""
    if size is None or tuple(logits.shape[-2:]) == tuple(size):
        return to_ids(logits)
    try:
        best = ids = None
        for start in range(0, logits.shape[1], CLASS_CHUNK):
            up = F.interpolate(logits[:, start:start + CLASS_CHUNK], size=tuple(size), mode="bilinear",
                               align_corners=False)
            value, index = up.max(1)
            index = (index + start).to(torch.uint8)
            del up
            if best is None:
                best, ids = value, index
            else:  # strictly greater: a tie keeps the lower class id, as argmax does
                better = value > best
                best, ids = torch.where(better, value, best), torch.where(better, index, ids)
    except RuntimeError as e:
        if "alloc" not in str(e).lower() and "memory" not in str(e).lower():
            raise
        raise InputError(None, f"a {size[0]}x{size[1]} frame needs more memory than is free",
                         "segment a smaller frame") from None
    return ids.cpu().numpy()


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
