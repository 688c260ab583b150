"""Predicting files: image paths, folders and globs (and videos) in; id masks, colour masks,
overlays (with a legend of the classes present) and confidence maps out. Every output name and every
input is checked before anything is written; with `skip_errors`, unreadable inputs are reported one
line each and skipped.

Usage: ``predict_files(predictor, ["frames/", "one.jpg"], "out/", Outputs(overlay=True, legend=True))``
"""
from __future__ import annotations

import glob
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.imageio import IMAGE_SUFFIXES, atomic_save_png, read_image
from ..errors import InputError
from ..safety import plan_files, relation
from .predictor import Predictor
from .render import colorize, draw_legend, overlay


@dataclass(frozen=True)
class Outputs:
    """What predict_files writes beside <stem>.png (ids) and <stem>_color.png."""

    overlay: bool = False     # <stem>_overlay.png: the frame blended with its colours
    alpha: float = 0.5        # the colours' weight in the overlay
    legend: bool = False      # the classes present, with their colours, drawn on the overlay
    probs: bool = False       # <stem>_conf.png: per-pixel confidence (max softmax) as a 16-bit PNG


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


def output_files(paths: Sequence[Path], out: Path, outputs: Outputs = Outputs()) -> list[tuple[Path, Path]]:
    """Every (file, input it comes from) that predict_files writes: videos one overlay .mp4; images
    their ids, colours and the optional overlay and confidence map."""
    from .video import VIDEO_SUFFIXES
    planned = []
    for p in paths:
        if p.suffix.lower() in VIDEO_SUFFIXES:
            names = [f"{p.stem}_overlay.mp4"]
        else:
            names = [f"{p.stem}.png", f"{p.stem}_color.png"] + ([f"{p.stem}_overlay.png"] if outputs.overlay else []) \
                + ([f"{p.stem}_conf.png"] if outputs.probs else [])
        planned += [(out / name, p) for name in names]
    return planned


def plan_outputs(inputs: Sequence[str], paths: Sequence[Path], out: Path, outputs: Outputs = Outputs(),
                 overwrite: bool = False) -> None:
    """Refuse, before anything is written: an --out that is or lies inside an input folder, two
    outputs under one name (x.png and x_color.png both make x_color.png), an output that is an input,
    and an existing output without `overwrite`."""
    for item in inputs:
        how = relation(out, item) if Path(item).is_dir() else None
        if how in ("is", "lies inside"):
            raise InputError(out, f"{how} the input folder {item}",
                             "choose an --out folder outside the inputs; roadseg never writes into its inputs")
    planned = output_files(paths, out, outputs)
    plan_files([t for t, _ in planned], paths, overwrite, [s for _, s in planned])


def predict_files(predictor: Predictor, inputs: Sequence[str], out: str | Path, outputs: Outputs = Outputs(),
                  overwrite: bool = False, progress: bool = False,
                  skip_errors: bool = False) -> tuple[list[Path], list[Path]]:
    """Write <stem>.png (ids), <stem>_color.png and the `outputs` asked for, for every input; returns
    (files written, inputs skipped). Existing outputs are replaced only with `overwrite`; `progress`
    shows a bar on stderr when it is a terminal. Every input is decoded before the first output is
    written: a bad one stops the run, or with `skip_errors` is reported in one line and left out."""
    from .video import VIDEO_SUFFIXES, predict_video  # imageio-ffmpeg is optional
    out = Path(out)
    paths = expand_inputs(inputs)
    plan_outputs(inputs, paths, out, outputs, overwrite)
    videos = [p for p in paths if p.suffix.lower() in VIDEO_SUFFIXES]
    images, skipped = [], []
    for p in (p for p in paths if p not in videos):
        try:
            read_image(p)
            images.append(p)
        except InputError as e:
            if not skip_errors:
                raise
            print(f"roadseg: skipped {e}", file=sys.stderr)
            skipped.append(p)
    written = []
    for p in videos:
        target = out / f"{p.stem}_overlay.mp4"
        stats = predict_video(predictor, p, target, alpha=outputs.alpha)
        print(f"{p}: {stats['frames']} frames at {stats['fps']:.1f} frames/s -> {target}", flush=True)
        written.append(target)
    from tqdm import tqdm
    for p in tqdm(images, desc="predict", unit="frame", leave=False, disable=None if progress else True):
        written += _write_one(predictor, p, read_image(p), out, outputs)
    return written, skipped


def _write_one(predictor: Predictor, path: Path, image: np.ndarray, out: Path, outputs: Outputs) -> list[Path]:
    if outputs.probs:
        probs = predictor.probabilities(image)
        ids, confidence = probs.argmax(2).astype(np.uint8), probs.max(2)
    else:
        ids = predictor.predict(image)
    colors = colorize(ids, predictor.table)
    written = [atomic_save_png(ids, out / f"{path.stem}.png"), atomic_save_png(colors, out / f"{path.stem}_color.png")]
    if outputs.overlay:
        blend = overlay(image, colors, outputs.alpha)
        if outputs.legend:
            blend = draw_legend(blend, ids, predictor.table)
        written.append(atomic_save_png(blend, out / f"{path.stem}_overlay.png"))
    if outputs.probs:
        written.append(atomic_save_png(np.rint(confidence * 65535).astype(np.uint16), out / f"{path.stem}_conf.png"))
    return written
