"""Datasets from disk to tensors: layout discovery, pairing by stem, splits, decoding, caching.

Three layouts are understood:
  carla   DIR/CameraRGB/*.png + DIR/CameraMask/*.png
  camvid  DIR/{train,val,test}/*.png + DIR/{train,val,test}annot/*.png
  generic DIR/images/* + DIR/masks/*.png

Usage::

    layout = discover("data", "auto")
    train_pairs, val_pairs = split_pairs(layout, val_fraction=0.2, seed=0)
    train = SampleCache.load(train_pairs, size=(96, 128), num_classes=23)
    images, masks = train.batch(torch.arange(8))   # float (8,3,96,128) in [0,1], long (8,96,128)
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from .errors import InputError
from .imageio import IMAGE_SUFFIXES, read_image, read_mask

FORMATS = ("carla", "camvid", "generic")
LAYOUT_FOLDERS = {
    "carla": {"all": ("CameraRGB", "CameraMask")},
    "camvid": {s: (s, f"{s}annot") for s in ("train", "val", "test")},
    "generic": {"all": ("images", "masks")},
}


@dataclass(frozen=True)
class Pair:
    """An image file and its mask file (mask is None for unlabelled frames)."""

    image: Path
    mask: Path | None

    @property
    def stem(self) -> str:
        return self.image.stem


@dataclass
class Layout:
    """Discovered dataset: its format and the pairs of each split found on disk."""

    root: Path
    format: str
    splits: dict[str, list[Pair]]


def parse_size(text: str | Sequence[int]) -> tuple[int, int]:
    """'96x128' (height x width) -> (96, 128)."""
    if not isinstance(text, str):
        h, w = text
        return int(h), int(w)
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(None, f"size '{text}' is not HEIGHTxWIDTH", "write it like 96x128") from None
    if h <= 0 or w <= 0:
        raise InputError(None, f"size '{text}' must be positive", "write it like 96x128")
    return h, w


def check_size(size: tuple[int, int], multiple: int = 16) -> None:
    """Refuse a network input size that the U-Net cannot take."""
    if size[0] % multiple or size[1] % multiple:
        raise InputError(None, f"size {size[0]}x{size[1]} is not divisible by {multiple}",
                         f"choose height and width that are multiples of {multiple}, e.g. 96x128")


def scan_folder(folder: Path, masks: bool) -> tuple[dict[str, Path], list[InputError]]:
    """Image files in `folder` by stem, and the problems found (non-image files, repeated stems).

    Hidden files are skipped; masks must be PNG, images PNG or JPEG."""
    found: dict[str, Path] = {}
    problems: list[InputError] = []
    allowed = {".png"} if masks else IMAGE_SUFFIXES
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix.lower() not in allowed:
            kind = "PNG" if masks else "PNG or JPEG"
            problems.append(InputError(path, f"is not a {kind} file", "move it out of the dataset folder"))
        elif path.stem in found:
            problems.append(InputError(path, f"has the same name as {found[path.stem].name}",
                                       "keep one file per frame"))
        else:
            found[path.stem] = path
    return found, problems


def scan_pairs(image_dir: Path, mask_dir: Path) -> tuple[list[Pair], list[InputError]]:
    """Match images to masks by file stem; unmatched files on either side are reported as problems."""
    images, problems = scan_folder(image_dir, masks=False)
    masks, mask_problems = scan_folder(mask_dir, masks=True)
    problems += mask_problems
    for stem, path in images.items():
        if stem not in masks:
            problems.append(InputError(path, f"has no mask named {stem}.png in {mask_dir}",
                                       "add the mask or remove the image"))
    for stem, path in masks.items():
        if stem not in images:
            problems.append(InputError(path, f"has no image named {stem}.* in {image_dir}",
                                       "add the image or remove the mask"))
    return [Pair(images[s], masks[s]) for s in sorted(images) if s in masks], problems


def pair_folder(image_dir: Path, mask_dir: Path) -> list[Pair]:
    """Strict pairing: the first problem found is raised, naming how many more there are."""
    pairs, problems = scan_pairs(image_dir, mask_dir)
    raise_first(problems)
    return pairs


def raise_first(problems: list[InputError]) -> None:
    """Raise the first problem; when there are more, say so and point at `roadseg check`."""
    if problems:
        first = problems[0]
        if len(problems) > 1:
            first.args = (f"{first.args[0]} (and {len(problems) - 1} more problems: "
                          f"run `roadseg check` on the dataset for the list)",)
        raise first


def detect_format(root: Path) -> str:
    """Guess the layout from folder names."""
    for fmt, splits in LAYOUT_FOLDERS.items():
        if any((root / img).is_dir() and (root / msk).is_dir() for img, msk in splits.values()):
            return fmt
    raise InputError(root, "has no known dataset layout",
                     "expected CameraRGB/+CameraMask/ (carla), train/+trainannot/ (camvid) "
                     "or images/+masks/ (generic)")


def discover(root: str | Path, fmt: str = "auto", problems: list[InputError] | None = None) -> Layout:
    """Find the pairs of every split of the dataset at `root`.

    Unmatched or foreign files raise the first problem, unless a `problems` list is given to collect them."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "dataset folder not found", "check the --data path")
    if fmt == "auto":
        fmt = detect_format(root)
    if fmt not in FORMATS:
        raise InputError(None, f"unknown dataset format '{fmt}'", f"use one of {', '.join(FORMATS)} or auto")
    folders = LAYOUT_FOLDERS[fmt]
    if not any((root / img).is_dir() or (root / msk).is_dir() for img, msk in folders.values()):
        expected = " or ".join(f"{img}/ + {msk}/" for img, msk in folders.values())
        raise InputError(root, f"has no {fmt} folders", f"expected {expected}")
    splits = {}
    for split, (img, msk) in folders.items():
        if (root / img).is_dir() or (root / msk).is_dir():
            for sub in (img, msk):
                if not (root / sub).is_dir():
                    raise InputError(root / sub, "folder not found", f"a {fmt} dataset needs both {img}/ and {msk}/")
            if problems is None:
                pairs = pair_folder(root / img, root / msk)
            else:
                pairs, found = scan_pairs(root / img, root / msk)
                problems += found
            if pairs:
                splits[split] = pairs
    if not splits:
        raise InputError(root, f"holds no image/mask pairs ({fmt} layout)", "add data or check the path")
    return Layout(root, fmt, splits)


def split_pairs(layout: Layout, val_fraction: float = 0.2, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """Train and val pairs: the layout's own split, else a seeded random split of all pairs."""
    if "train" in layout.splits:
        return layout.splits["train"], layout.splits.get("val", [])
    pairs = [p for split in layout.splits.values() for p in split]
    if not 0 <= val_fraction < 1:
        raise InputError(None, f"--val-fraction {val_fraction} is outside [0, 1)", "use e.g. 0.2")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_val = int(round(len(pairs) * val_fraction))
    if len(pairs) > 1 and val_fraction > 0:
        n_val = min(max(n_val, 1), len(pairs) - 1)
    val = sorted((pairs[i] for i in order[:n_val]), key=lambda p: p.stem)
    train = sorted((pairs[i] for i in order[n_val:]), key=lambda p: p.stem)
    return train, val


def select_split(layout: Layout, split: str, val_fraction: float = 0.2, seed: int = 0) -> list[Pair]:
    """The pairs of one named split: train, val, test or all."""
    if split == "all":
        return [p for s in layout.splits.values() for p in s]
    if split in ("train", "val") and "all" in layout.splits:
        train, val = split_pairs(layout, val_fraction, seed)
        return train if split == "train" else val
    if split not in layout.splits:
        raise InputError(layout.root, f"has no '{split}' split",
                         f"available: {', '.join(sorted(layout.splits))}, all")
    return layout.splits[split]


def select_trained_split(layout: Layout, split: str, data_meta: dict) -> list[Pair]:
    """A split as a checkpoint's training drew it: its seeded val fraction (`data_meta` is ckpt["data"])."""
    return select_split(layout, split, data_meta.get("val_fraction", 0.2), data_meta.get("seed", 0))


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
              mask_size: tuple[int, int] | None | str = "same") -> tuple[np.ndarray, np.ndarray]:
    """Decode one pair: image resized to `size`, mask to `mask_size` ('same' = `size`, None = original)."""
    image = read_image(pair.image)
    mask = read_mask(pair.mask)
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


class SampleCache:
    """All decoded, resized samples of a split held in memory as uint8, so epochs never decode PNGs."""

    def __init__(self, pairs: list[Pair], images: torch.Tensor, masks: torch.Tensor) -> None:
        self.pairs, self.images, self.masks = pairs, images, masks

    @classmethod
    def load(cls, pairs: list[Pair], size: tuple[int, int], num_classes: int | None = None,
             ignore_index: int | None = None, resize: str = "bilinear", progress: bool = False) -> "SampleCache":
        """Decode every pair once; validates files and class ids (num_classes None skips the id check)."""
        images = np.empty((len(pairs), size[0], size[1], 3), dtype=np.uint8)
        masks = np.empty((len(pairs), size[0], size[1]), dtype=np.uint8)
        items: Iterable = enumerate(pairs)
        if progress:
            from tqdm import tqdm
            items = tqdm(items, total=len(pairs), desc="decode", unit="img", leave=False, disable=None)
        for i, pair in items:
            image, mask = load_pair(pair, size, resize)
            if num_classes is not None:
                check_ids(mask, pair.mask, num_classes, ignore_index)
            images[i], masks[i] = image, mask
        return cls(pairs, torch.from_numpy(images), torch.from_numpy(masks))

    def __len__(self) -> int:
        return len(self.pairs)

    def max_id(self, ignore_index: int | None = None) -> int:
        """Largest class id present (ignoring `ignore_index`)."""
        ids = torch.unique(self.masks)
        if ignore_index is not None:
            ids = ids[ids != ignore_index]
        return int(ids.max()) if ids.numel() else 0

    def batch(self, index: torch.Tensor, transform: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Float NCHW images in [0,1] and long NxHxW masks for the given sample indices,
        each pair passed through `transform(image, mask)` first when one is given."""
        if transform is None:
            return to_tensor(self.images[index]), self.masks[index].long()
        pairs = [transform(self.images[i].numpy(), self.masks[i].numpy()) for i in index.tolist()]
        images = np.stack([p[0] for p in pairs])
        masks = np.stack([p[1] for p in pairs])
        return to_tensor(images), torch.from_numpy(masks).long()
