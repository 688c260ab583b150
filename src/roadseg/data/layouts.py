"""Datasets on disk: layout discovery, pairing images with masks by file stem, and splits.

Four layouts are understood:
  carla       DIR/CameraRGB/*.png + DIR/CameraMask/*.png
  camvid      DIR/{train,val,test}/*.png + DIR/{train,val,test}annot/*.png
  cityscapes  DIR/leftImg8bit/{train,val,test}/CITY/*_leftImg8bit.png
              + DIR/gtFine/{split}/CITY/*_gtFine_labelIds.png (label ids, mapped to the 19 train ids on load)
  generic     DIR/images/* + DIR/masks/*.png

Usage::

    layout = discover("data", "auto")
    train_pairs, val_pairs = split_pairs(layout, val_fraction=0.2, seed=0)
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .imageio import IMAGE_SUFFIXES

FORMATS = ("carla", "camvid", "cityscapes", "generic")
LAYOUT_FOLDERS = {
    "carla": {"all": ("CameraRGB", "CameraMask")},
    "camvid": {s: (s, f"{s}annot") for s in ("train", "val", "test")},
    "cityscapes": {s: (f"leftImg8bit/{s}", f"gtFine/{s}") for s in ("train", "val", "test")},
    "generic": {"all": ("images", "masks")},
}
CITYSCAPES_IMAGE, CITYSCAPES_MASK = "_leftImg8bit", "_gtFine_labelIds"


@dataclass(frozen=True)
class Pair:
    """An image file and its mask file (mask is None for unlabelled frames); `ids` names the lookup
    table its mask's ids go through on load ('cityscapes': label ids to train ids), if any."""

    image: Path
    mask: Path | None
    ids: str | None = None

    @property
    def stem(self) -> str:
        return self.image.stem


@dataclass
class Layout:
    """Discovered dataset: its format and the pairs of each split found on disk."""

    root: Path
    format: str
    splits: dict[str, list[Pair]]


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


def scan_cityscapes(image_dir: Path, mask_dir: Path) -> tuple[list[Pair], list[InputError]]:
    """Cityscapes pairs: CITY/NAME_leftImg8bit.png with CITY/NAME_gtFine_labelIds.png."""
    pairs, problems = [], []
    for city in sorted(d for d in image_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for image in sorted(city.glob(f"*{CITYSCAPES_IMAGE}.png")):
            key = image.name[: -len(f"{CITYSCAPES_IMAGE}.png")]
            mask = mask_dir / city.name / f"{key}{CITYSCAPES_MASK}.png"
            if mask.is_file():
                pairs.append(Pair(image, mask, "cityscapes"))
            else:
                problems.append(InputError(image, f"has no mask {mask.name} in {mask.parent}",
                                           "add the mask or remove the image"))
    return pairs, problems


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
            if fmt == "cityscapes":
                pairs, found = scan_cityscapes(root / img, root / msk)
            elif problems is None:
                pairs, found = pair_folder(root / img, root / msk), []
            else:
                pairs, found = scan_pairs(root / img, root / msk)
            if problems is None:
                raise_first(found)
            else:
                problems += found
            if pairs:
                splits[split] = pairs
    if not splits:
        raise InputError(root, f"holds no image/mask pairs ({fmt} layout)", "add data or check the path")
    return Layout(root, fmt, splits)


def split_pairs(layout: Layout, val_fraction: float = 0.2, seed: int = 0,
                train_on: str = "train") -> tuple[list[Pair], list[Pair]]:
    """Train and val pairs: the layout's own split, else a seeded random split of all pairs. With
    `train_on="train+val"` the val pairs are trained on too (and still returned as val, to monitor)."""
    train, val = _split(layout, val_fraction, seed)
    if train_on == "train+val":
        train = sorted(train + val, key=lambda p: p.stem)
    return train, val


def _split(layout: Layout, val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
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
        train, val = _split(layout, val_fraction, seed)
        return train if split == "train" else val
    if split not in layout.splits:
        raise InputError(layout.root, f"has no '{split}' split",
                         f"available: {', '.join(sorted(layout.splits))}, all")
    return layout.splits[split]


def select_trained_split(layout: Layout, split: str, data_meta: dict) -> list[Pair]:
    """A split as a checkpoint's training drew it: its seeded val fraction (`data_meta` is ckpt["data"])."""
    return select_split(layout, split, data_meta.get("val_fraction", 0.2), data_meta.get("seed", 0))

