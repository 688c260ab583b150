"""Predicting files: image paths, folders and globs (and videos) in, id masks, colour masks and
overlays out, every input decoded and checked before anything is written.

Usage: ``predict_files(predictor, ["frames/", "one.jpg"], "out/", with_overlay=True)``
"""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Sequence

from ..data.imageio import IMAGE_SUFFIXES, atomic_save_png, read_image
from ..errors import InputError
from ..safety import plan_files, relation
from .predictor import Predictor
from .render import colorize, overlay


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Files, folders (their images) and glob patterns -> a sorted list of image paths."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
            if not found:
                raise InputError(p, "folder holds no PNG or JPEG images", "point at a folder of frames")
            paths += found
        elif p.exists():
            paths.append(p)
        elif any(c in item for c in "*?["):
            matched = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            if not matched:
                raise InputError(item, "pattern matches no files", "check the pattern")
            paths += matched
        else:
            raise InputError(p, "file not found", "check the path")
    return list(dict.fromkeys(paths))


def output_files(paths: Sequence[Path], out: Path, with_overlay: bool = False) -> list[tuple[Path, Path]]:
    """Every (file, input it comes from) that predict_files writes: videos one overlay .mp4; images
    their ids, colours and optionally the overlay."""
    from .video import VIDEO_SUFFIXES
    planned = []
    for p in paths:
        if p.suffix.lower() in VIDEO_SUFFIXES:
            names = [f"{p.stem}_overlay.mp4"]
        else:
            names = [f"{p.stem}.png", f"{p.stem}_color.png"] + ([f"{p.stem}_overlay.png"] if with_overlay else [])
        planned += [(out / name, p) for name in names]
    return planned


def plan_outputs(inputs: Sequence[str], paths: Sequence[Path], out: Path, with_overlay: bool,
                 overwrite: bool) -> None:
    """Refuse, before anything is written: an --out that is or lies inside an input folder, two
    outputs under one name (x.png and x_color.png both make x_color.png), an output that is an input,
    and an existing output without `overwrite`."""
    for item in inputs:
        how = relation(out, item) if Path(item).is_dir() else None
        if how in ("is", "lies inside"):
            raise InputError(out, f"{how} the input folder {item}",
                             "choose an --out folder outside the inputs; roadseg never writes into its inputs")
    planned = output_files(paths, out, with_overlay)
    plan_files([t for t, _ in planned], paths, overwrite, [s for _, s in planned])


def predict_files(predictor: Predictor, inputs: Sequence[str], out: str | Path,
                  with_overlay: bool = False, overwrite: bool = False, progress: bool = False) -> list[Path]:
    """Write <stem>.png (ids), <stem>_color.png and optionally <stem>_overlay.png for every input.

    Every output name and every input is checked before anything is written (`plan_outputs`); existing
    outputs are replaced only with `overwrite`. `progress` shows a bar on stderr when it is a terminal."""
    from .video import VIDEO_SUFFIXES, predict_video  # imageio-ffmpeg is optional
    out = Path(out)
    paths = expand_inputs(inputs)
    plan_outputs(inputs, paths, out, with_overlay, overwrite)
    videos = [p for p in paths if p.suffix.lower() in VIDEO_SUFFIXES]
    images = [p for p in paths if p not in videos]
    for p in images:
        read_image(p)  # validate every input first: a bad file stops the run before any output
    written = []
    for p in videos:
        target = out / f"{p.stem}_overlay.mp4"
        stats = predict_video(predictor, p, target)
        print(f"{p}: {stats['frames']} frames at {stats['fps']:.1f} frames/s -> {target}", flush=True)
        written.append(target)
    from tqdm import tqdm
    for p in tqdm(images, desc="predict", unit="frame", leave=False, disable=None if progress else True):
        image = read_image(p)
        ids = predictor.predict(image)
        colors = colorize(ids, predictor.table)
        written.append(atomic_save_png(ids, out / f"{p.stem}.png"))
        written.append(atomic_save_png(colors, out / f"{p.stem}_color.png"))
        if with_overlay:
            written.append(atomic_save_png(overlay(image, colors), out / f"{p.stem}_overlay.png"))
    return written
