"""Prediction with a trained checkpoint: id masks at the input's own resolution, colour masks,
overlays and the notebook's comparison figures.

Usage::

    predictor = Predictor.from_checkpoint("runs/demo/train/best.pt")
    ids = predictor.predict(rgb_uint8)               # HxW uint8, same size as the input
    predict_files(predictor, ["frames/"], "out/", overlay=True)
"""
from __future__ import annotations

import functools
import glob
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from .checkpoint import build_model, class_table_of, load_checkpoint
from .classes import ClassTable
from .data import Pair, check_size, load_pair, resize_image, to_tensor
from .device import autocast, keep_freed_memory, pick_device
from .engines import Engine, make_engine
from .errors import InputError
from .imageio import IMAGE_SUFFIXES, atomic_save_png, read_image
from .plots import colorize, compare_figure
from .winograd import WinogradUNet, unavailable_reason


class Predictor:
    """A model, its class table and its input size; turns uint8 RGB frames into id masks."""

    def __init__(self, model: torch.nn.Module | None, table: ClassTable, size: tuple[int, int],
                 resize: str = "bilinear", device: str = "auto", meta: dict[str, Any] | None = None,
                 backend: str = "torch", onnx: bytes | None = None, winograd: bool = True) -> None:
        self.table, self.size, self.resize = table, tuple(size), resize
        self.meta = meta or {}
        self.backend = backend
        self.engine: Engine | None = None
        self.fast: WinogradUNet | None = None
        if backend == "torch":
            if model is None:
                raise InputError(None, "an exported .onnx model runs on the onnx or openvino backend",
                                 "use --backend onnx or --backend openvino")
            self.device = pick_device(device)
            self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.preserve_format
            self.model = model.to(self.device, memory_format=self.memory_format).eval()
            if winograd and self.device.type == "cpu":
                self.fast = WinogradUNet.build(self.model)
                if self.fast is None and unavailable_reason():
                    _note_once(f"roadseg: Winograd CPU kernels not used ({unavailable_reason()}); "
                               "running PyTorch's convolutions")
        else:
            from .export import onnx_bytes
            self.device, self.model = torch.device("cpu"), None
            self.engine = make_engine(backend, onnx if onnx is not None else onnx_bytes(self.meta))
        if self.device.type == "cpu":
            keep_freed_memory()

    @classmethod
    def from_checkpoint(cls, name: str | Path, device: str = "auto", size: tuple[int, int] | None = None,
                        backend: str = "torch", winograd: bool = True) -> "Predictor":
        """Load a checkpoint path or shipped model name; `size` overrides the trained input size;
        `backend` 'onnx' or 'openvino' runs the network in onnxruntime or OpenVINO (CPU); on the CPU the
        torch backend runs roadseg's Winograd network (`roadseg.winograd`) unless `winograd` is False.
        An exported .onnx file (fp32 or INT8) runs in onnxruntime, or OpenVINO if asked, with its stored
        metadata."""
        if str(name).endswith(".onnx"):
            return cls.from_onnx(name, size, backend)
        ckpt = load_checkpoint(name)
        model = build_model(ckpt)
        size = tuple(size or ckpt["input"]["size"])
        check_size(size, model.size_multiple)
        return cls(model, class_table_of(ckpt), size, ckpt["input"].get("resize", "bilinear"), device, ckpt, backend,
                   winograd=winograd)

    @classmethod
    def from_onnx(cls, path: str | Path, size: tuple[int, int] | None = None, backend: str = "onnx") -> "Predictor":
        """A predictor running an .onnx file written by `roadseg export` in onnxruntime or OpenVINO."""
        from .export import read_metadata
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "file not found", "check the path")
        meta = read_metadata(path)
        size = tuple(size or meta["input"]["size"])
        check_size(size)
        return cls(None, ClassTable.from_dict(meta["classes"]), size, meta["input"].get("resize", "bilinear"),
                   "cpu", meta, "onnx" if backend == "torch" else backend, path.read_bytes())

    @torch.no_grad()
    def logits(self, images: np.ndarray, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Logits for uint8 NxHxWx3 frames already at the model size; upsampled to `out_size` if given."""
        x = to_tensor(images)
        if self.engine is not None:
            logits = torch.from_numpy(self.engine(x.numpy()))
        elif self.fast is not None:
            logits = self.fast(x)
        else:
            with autocast(self.device, enabled=self.device.type == "cuda"):  # fp32 logits on the CPU
                logits = self.model(x.to(self.device, memory_format=self.memory_format)).float()
        if out_size is not None and tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
        return logits

    def predict(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 RGB (uint8, or float in [0,1]; HxW grey and HxWx4 also taken) -> HxW uint8 class ids
        at the same resolution."""
        image = as_rgb_uint8(image)
        small = resize_image(image, self.size, self.resize)
        return self.logits(small[None], image.shape[:2]).argmax(1)[0].cpu().numpy().astype(np.uint8)

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Several frames (any sizes) -> their id masks."""
        images = [as_rgb_uint8(im) for im in images]
        small = np.stack([resize_image(im, self.size, self.resize) for im in images])
        logits = self.logits(small)
        out = []
        for i, image in enumerate(images):
            up = F.interpolate(logits[i:i + 1], size=image.shape[:2], mode="bilinear", align_corners=False)
            out.append(up.argmax(1)[0].cpu().numpy().astype(np.uint8))
        return out


@functools.cache
def _note_once(message: str) -> None:
    print(message, file=sys.stderr)


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
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems and stems[p.stem] != p:
            raise InputError(p, f"has the same name as {stems[p.stem]}; outputs would collide",
                             "predict them into separate --out folders")
        stems[p.stem] = p
    return list(dict.fromkeys(paths))


def overlay(image: np.ndarray, colors: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend an image with its colour mask."""
    return (image.astype(np.float32) * (1 - alpha) + colors.astype(np.float32) * alpha).round().astype(np.uint8)


def predict_files(predictor: Predictor, inputs: Sequence[str], out: str | Path,
                  with_overlay: bool = False) -> list[Path]:
    """Write <stem>.png (ids), <stem>_color.png and optionally <stem>_overlay.png for every input.

    All inputs are decoded and checked before anything is written."""
    from .video import VIDEO_SUFFIXES, predict_video
    paths = expand_inputs(inputs)
    videos = [p for p in paths if p.suffix.lower() in VIDEO_SUFFIXES]
    images = [p for p in paths if p not in videos]
    for p in images:
        read_image(p)  # validate every input first: a bad file stops the run before any output
    out = Path(out)
    written = []
    for p in videos:
        target = out / f"{p.stem}_overlay.mp4"
        stats = predict_video(predictor, p, target)
        print(f"{p}: {stats['frames']} frames at {stats['fps']:.1f} frames/s -> {target}", flush=True)
        written.append(target)
    for p in images:
        image = read_image(p)
        ids = predictor.predict(image)
        colors = colorize(ids, predictor.table)
        written.append(atomic_save_png(ids, out / f"{p.stem}.png"))
        written.append(atomic_save_png(colors, out / f"{p.stem}_color.png"))
        if with_overlay:
            written.append(atomic_save_png(overlay(image, colors), out / f"{p.stem}_overlay.png"))
    return written


def compare_pairs(predictor: Predictor, pairs: Sequence[Pair], out: str | Path) -> list[Path]:
    """The notebook's figure (image | true mask | predicted mask) for each pair, at the model size."""
    samples = [load_pair(pair, predictor.size, predictor.resize) for pair in pairs]
    out = Path(out)
    written = []
    for pair, (image, truth) in zip(pairs, samples):
        pred = predictor.logits(image[None]).argmax(1)[0].cpu().numpy().astype(np.uint8)
        written.append(compare_figure(image, truth, pred, predictor.table, out / f"{pair.stem}_compare.png",
                                      title=pair.stem))
    return written
