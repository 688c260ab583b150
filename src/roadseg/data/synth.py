"""Synthetic CARLA-format datasets for the demo and the tests: scenes from `scenes.render_scene`,
written exactly as CARLA writes them: ``OUT/CameraRGB/000000.png`` (RGB) and
``OUT/CameraMask/000000.png`` (RGBA, class id in the red channel, green and blue 0, alpha 255).
The same seed gives the same frames. `classes="carla08"` writes CARLA 0.8's 13 ids: what 0.8 has no
class for (the sky, ground, terrain, water, bridges, rails, guard rails, traffic lights, static and
dynamic objects) is its id 0, None.

Usage: ``write_dataset("data", count=200, size=(480, 640), seed=0, hood=1.0, classes="carla")``
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..classes import CARLA08_NAMES
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
                  progress: bool = False, overwrite: bool = False, hood: float = 0.0,
                  classes: str = "carla") -> Path:
    """Write `count` frames in CARLA layout under `out`; frame i depends only on (seed, i). Existing
    frames in OUT/CameraRGB or OUT/CameraMask are refused, or with `overwrite` removed first (so no
    frames of another size or count stay behind). `hood`: the share of frames with the ego vehicle's
    hood; `classes`: carla (23 ids) or carla08 (13)."""
    if classes not in ("carla", "carla08"):
        raise InputError(None, f"synthetic scenes come in the carla or carla08 class table, not '{classes}'",
                         "use --classes carla or --classes carla08")
    if not 0 <= hood <= 1:
        raise InputError(None, f"--hood {hood} is not a share of frames", "give a number from 0 to 1")
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
        rgb, ids = render_scene(rng, size, hood)
        if classes == "carla08":
            ids = np.where(ids >= len(CARLA08_NAMES), 0, ids).astype(np.uint8)  # 0..12 mean the same in 0.8
        atomic_save_png(rgb, out / "CameraRGB" / f"{i:06d}.png")
        atomic_save_png(carla_mask(ids), out / "CameraMask" / f"{i:06d}.png")
    return out
