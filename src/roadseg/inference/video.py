"""Segmenting videos: every frame of an mp4 (or any format ffmpeg reads) through the predictor,
written as an overlay video, with the frames/s achieved. Uses imageio-ffmpeg (the `video` extra).

Usage: ``fps = predict_video(predictor, "drive.mp4", "out/drive_overlay.mp4")``
   or: ``roadseg predict --model camvid drive.mp4 --out out``
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError, require
from ..data.imageio import atomic_write
from .render import colorize, overlay

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}


def _ffmpeg():
    return require("imageio_ffmpeg", "video", "video input")


def read_video(path: str | Path) -> tuple[dict, Iterator[np.ndarray]]:
    """The video's metadata (size, fps) and an iterator of HxWx3 uint8 frames."""
    ffmpeg = _ffmpeg()
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "video file not found", "check the path")
    reader = ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    except (RuntimeError, OSError, StopIteration) as e:
        raise InputError(path, f"cannot be read as a video ({str(e).strip().splitlines()[-1][:120] if str(e).strip() else 'no stream'})",
                         "check that it is a video file ffmpeg can decode") from None
    w, h = meta["size"]

    def frames() -> Iterator[np.ndarray]:
        for raw in reader:
            yield np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
    return meta, frames()


def predict_video(predictor, path: str | Path, out: str | Path, batch: int = 8, alpha: float = 0.5) -> dict:
    """Write an overlay video of `path` to `out` (atomically); returns frames, seconds and frames/s."""
    ffmpeg = _ffmpeg()
    meta, frames = read_video(path)
    w, h = meta["size"]
    fps = float(meta.get("fps") or 25.0)
    count = 0
    t0 = time.perf_counter()

    def write(tmp: Path) -> None:
        nonlocal count
        writer = ffmpeg.write_frames(str(tmp), (w, h), fps=fps, macro_block_size=1, ffmpeg_log_level="error",
                                     output_params=["-f", "mp4"])
        writer.send(None)
        chunk: list[np.ndarray] = []

        def flush() -> None:
            nonlocal count
            for image, ids in zip(chunk, predictor.predict_batch(chunk)):
                writer.send(np.ascontiguousarray(overlay(image, colorize(ids, predictor.table), alpha)))
                count += 1
            chunk.clear()
        for frame in frames:
            chunk.append(frame)
            if len(chunk) == batch:
                flush()
        if chunk:
            flush()
        writer.close()
        if count == 0:  # raised before the rename: an existing output stays as it was
            raise InputError(path, "holds no video frames", "check the file")

    atomic_write(out, write)
    seconds = time.perf_counter() - t0
    return {"frames": count, "seconds": seconds, "fps": count / seconds, "video_fps": fps, "size": [h, w]}
