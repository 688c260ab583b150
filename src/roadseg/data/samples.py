"""From files to tensors: decoding a pair, resizing, the in-memory sample cache, and the one
preprocessing step (uint8 frames to the network's float input) that every path uses.

Usage::

    train = SampleCache.load(train_pairs, size=(96, 128), num_classes=23)
    image, mask = train.sample(3)                 # uint8 HxWx3 and HxW (batches: roadseg.data.loader)
    x = to_tensor(frames_uint8_nhwc)              # float NCHW in [0,1]
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from PIL import Image

from ..classes import id_table
from ..errors import InputError
from .imageio import read_image, read_mask
from .layouts import Pair
from pathlib import Path


def spread(count: int, picks: int) -> list[int]:
    """Up to `picks` of the indices 0..count-1, evenly spaced from 0 (the calibration frames of INT8 export
    and of --distill-int8)."""
    return list(range(0, count, max(count // max(picks, 1), 1)))[:picks]


def resize_image(rgb: np.ndarray, size: tuple[int, int] | None, mode: str = "bilinear") -> np.ndarray:
    """Resize an HxWx3 uint8 image to (height, width): bilinear by default, or nearest (the notebook)."""
    if size is None or rgb.shape[:2] == tuple(size):
        return rgb
    resample = Image.BILINEAR if mode == "bilinear" else Image.NEAREST
    return np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), resample))


def resize_mask(mask: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize an HxW id mask with nearest neighbour."""
    if size is None or mask.shape == tuple(size):
        return mask
    return np.asarray(Image.fromarray(mask).resize((size[1], size[0]), Image.NEAREST))


def check_ids(mask: np.ndarray, path: Path, num_classes: int, ignore_index: int | None) -> None:
    """Refuse ids that are neither a class nor the ignore id."""
    ids = np.unique(mask)
    bad = ids[(ids >= num_classes) & (ids != (ignore_index if ignore_index is not None else -1))]
    if bad.size:
        allowed = f"0..{num_classes - 1}" + (f" or {ignore_index} (ignored)" if ignore_index is not None else "")
        raise InputError(path, f"has class id {int(bad[0])}, outside {allowed}",
                         "fix the mask, or set --num-classes / --ignore-index for this dataset")


def load_pair(pair: Pair, size: tuple[int, int] | None, resize: str = "bilinear",
              mask_size: tuple[int, int] | None | str = "same",
              class_map: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pair: image resized to `size`, mask to `mask_size` ('same' = `size`, None = original),
    its ids passed through `class_map` (a 256-entry lookup table) when given."""
    image = read_image(pair.image)
    mask = read_mask(pair.mask)
    if pair.ids is not None:
        mask = id_table(pair.ids)[mask]
    if class_map is not None:
        mask = class_map[mask]
    if image.shape[:2] != mask.shape:
        raise InputError(pair.mask, f"is {mask.shape[1]}x{mask.shape[0]} but its image {pair.image.name} "
                         f"is {image.shape[1]}x{image.shape[0]}", "image and mask must have the same size")
    target = size if mask_size == "same" else mask_size
    return resize_image(image, size, resize), resize_mask(mask, target)


def to_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NxHxWx3 (or HxWx3) -> float NCHW (or CHW) in [0, 1]."""
    if isinstance(images, np.ndarray) and not images.flags.writeable:
        images = images.copy()
    t = torch.as_tensor(images)
    t = t.permute(0, 3, 1, 2) if t.ndim == 4 else t.permute(2, 0, 1)
    return t.float().div_(255.0)


def id_counts(masks: Iterable[torch.Tensor | np.ndarray]) -> np.ndarray:
    """Per-frame pixel counts of every id 0..255: (N, 256) int64, from N uint8 HxW masks (an NxHxW
    array or tensor, or any iterable of masks)."""
    counts = [np.bincount(np.asarray(m, dtype=np.uint8).ravel(), minlength=256) for m in masks]
    return np.stack(counts) if counts else np.zeros((0, 256), np.int64)


class SampleCache:
    """The decoded, resized samples of a split: every pair is decoded and checked once at load; the
    first ones, as many as `cache_bytes` allows (all by default), stay in memory as uint8 and the
    rest are decoded again whenever they are used. Per-frame id counts are kept for all of them."""

    def __init__(self, pairs: list[Pair], images: torch.Tensor, masks: torch.Tensor, counts: np.ndarray | None = None,
                 size: tuple[int, int] | None = None, resize: str = "bilinear",
                 class_map: np.ndarray | None = None) -> None:
        """`images`/`masks`: the first samples, decoded (all of them when `counts` is None, which is
        then counted from the masks); `size`, `resize`, `class_map`: how the others are decoded."""
        self.pairs, self.images, self.masks = pairs, images, masks
        self.counts = id_counts(masks) if counts is None else counts
        self.size = tuple(images.shape[1:3]) if size is None else size
        self.resize, self.class_map = resize, class_map

    @classmethod
    def load(cls, pairs: list[Pair], size: tuple[int, int], num_classes: int | None = None,
             ignore_index: int | None = None, resize: str = "bilinear", progress: bool = False,
             class_map: np.ndarray | None = None, cache_bytes: int | None = None) -> "SampleCache":
        """Decode every pair once (mask ids through `class_map` when given); validates files and class
        ids (num_classes None skips the id check). Keeps the first samples that fit in `cache_bytes`
        (None: all) in memory."""
        per_sample = size[0] * size[1] * 4
        keep = len(pairs) if cache_bytes is None else min(len(pairs), max(int(cache_bytes), 0) // per_sample)
        images = np.empty((keep, size[0], size[1], 3), dtype=np.uint8)
        masks = np.empty((keep, size[0], size[1]), dtype=np.uint8)
        counts = np.zeros((len(pairs), 256), dtype=np.int64)
        items: Iterable = enumerate(pairs)
        if progress:
            from tqdm import tqdm
            items = tqdm(items, total=len(pairs), desc="decode", unit="img", leave=False, disable=None)
        for i, pair in items:
            image, mask = load_pair(pair, size, resize, class_map=class_map)
            if num_classes is not None:
                check_ids(mask, pair.mask, num_classes, ignore_index)
            counts[i] = np.bincount(mask.ravel(), minlength=256)
            if i < keep:
                images[i], masks[i] = image, mask
        return cls(pairs, torch.from_numpy(images), torch.from_numpy(masks), counts, size, resize, class_map)

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def cached(self) -> int:
        """How many samples (the first ones) are held in memory."""
        return len(self.images)

    def ids(self) -> list[int]:
        """The distinct ids in the masks."""
        return np.flatnonzero(self.counts.sum(0)).tolist()

    def check_ids(self, num_classes: int, ignore_index: int | None) -> None:
        """`check_ids` for every mask, from the id counts (no decoding)."""
        for pair, counts in zip(self.pairs, self.counts):
            check_ids(np.flatnonzero(counts), pair.mask, num_classes, ignore_index)

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample `i` as (uint8 HxWx3 image, uint8 HxW mask): from memory, or decoded again."""
        if i < self.cached:
            return self.images[i].numpy(), self.masks[i].numpy()
        return load_pair(self.pairs[i], self.size, self.resize, class_map=self.class_map)
