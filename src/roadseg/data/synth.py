"""Synthetic CARLA-format datasets for the demo and the tests: scenes from `scenes.render_scene`,
written exactly as CARLA writes them: ``OUT/CameraRGB/000000.png`` (RGB) and
``OUT/CameraMask/000000.png`` (RGBA, class id in the red channel, green and blue 0, alpha 255).
The same seed gives the same frames.

Usage: ``write_dataset("data", count=200, size=(480, 640), seed=0)``
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..safety import refuse_deleting_here
from .imageio import atomic_save_png
from .scenes import render_scene

__all__ = ["carla_mask", "render_scene", "write_dataset"]


def carla_mask(ids: np.ndarray) -> np.ndarray:
    """CARLA's mask encoding: RGBA with the id in channel 0, channels 1-2 zero, alpha 255."""
    rgba = np.zeros(ids.shape + (4,), dtype=np.uint8)
    rgba[:, :, 0] = ids
    rgba[:, :, 3] = 255
    return rgba


def write_dataset(out: str | Path, count: int, size: tuple[int, int] = (480, 640), seed: int = 0,
                  progress: bool = False, overwrite: bool = False) -> Path:
    """Write `count` frames in CARLA layout under `out`; frame i depends only on (seed, i). Existing
    frames in OUT/CameraRGB or OUT/CameraMask are refused, or with `overwrite` removed first (so no
    frames of another size or count stay behind)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file, not a folder", "choose another output folder")
    folders = [out / "CameraRGB", out / "CameraMask"]
    existing = [f for d in folders if d.is_dir() for f in d.iterdir()]
    if existing:
        if not overwrite:
            raise InputError(out, f"already holds a dataset ({len(existing)} files in CameraRGB/ and CameraMask/)",
                             "pass --overwrite to replace its frames, or choose another output folder")
        for d in folders:
            refuse_deleting_here(d, "output")
            if d.is_dir():
                shutil.rmtree(d)
    items = range(count)
    if progress:
        from tqdm import tqdm
        items = tqdm(items, desc="synth", unit="frame", leave=False, disable=None)
    for i in items:
        rng = np.random.default_rng([seed, i])
        rgb, ids = render_scene(rng, size)
        atomic_save_png(rgb, out / "CameraRGB" / f"{i:06d}.png")
        atomic_save_png(carla_mask(ids), out / "CameraMask" / f"{i:06d}.png")
    return out
