"""The Predictor: a model's engine, class table and input description, turning uint8 RGB frames into
id masks at each frame's own resolution. It applies the one preprocessing (`processing.Preprocess`,
from the checkpoint's input description) and the one postprocessing (`processing.to_ids`) around
every engine (eager PyTorch, the Winograd network, onnxruntime, OpenVINO).

Usage::

    predictor = Predictor.from_checkpoint("runs/demo/train/best.pt")
    ids = predictor.predict(rgb_uint8)               # HxW uint8, same size as the input
    masks = predictor.predict_batch([a, b])          # frames of any sizes
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from ..checkpoint import build_model, class_table_of, load_checkpoint, size_multiple_of
from ..classes import ClassTable
from ..errors import InputError
from ..nets import check_size
from ..device import pick_device
from .engines import Engine, make_engine, resolve_precision
from .processing import Preprocess, as_rgb_uint8, to_ids, upsample_ids


def tta_scales(tta: bool | Sequence[float]) -> tuple[float, ...]:
    """The scales test-time augmentation runs at: none for False or an empty sequence, the frame's own
    for True (flip only), else the given ones (each with its mirror). Its result passed back in gives
    the same scales."""
    if isinstance(tta, bool):
        return (1.0,) if tta else ()
    scales = tuple(float(v) for v in tta)
    if not all(0.25 <= v <= 4 for v in scales):
        raise InputError(None, f"TTA scales {list(scales)} are out of range",
                         "use scales between 0.25 and 4, e.g. 0.8 1.2")
    return scales


class Predictor:
    """An engine with the class table and input description of its model. Frames are resized to the
    model's input size, or with `native` run at their own size (padded to the network's multiple by
    repeating the edge, then cropped back), or with `tile` (H, W) in overlapping windows of that size
    at their own resolution, the logits averaged where windows overlap (for frames much larger than
    the training size); `tta` averages the logits with those of the mirrored frame, and given scales
    (`tta=(0.8, 1.2)`) those of the frame and its mirror at each scale (see `tta_scales`)."""

    def __init__(self, engine: Engine, table: ClassTable, input: dict[str, Any],
                 meta: dict[str, Any] | None = None, native: bool = False, tta: bool | Sequence[float] = False,
                 tile: tuple[int, int] | None = None) -> None:
        self.engine, self.table, self.input = engine, table, dict(input)
        self.preprocess = Preprocess(input)
        self.meta = meta or {}
        self.multiple = int(input.get("size_multiple", 16))
        self.tta, self.tile = tta_scales(tta), tile
        self.native = native or tile is not None
        check_size(self.size, self.multiple)
        if tile is not None:
            check_size(tile, self.multiple)

    @property
    def size(self) -> tuple[int, int]:
        return self.preprocess.size

    @property
    def resize(self) -> str:
        return self.preprocess.resize_mode

    @classmethod
    def from_checkpoint(cls, name: str | Path, device: str = "auto", size: tuple[int, int] | str | None = None,
                        backend: str = "torch", winograd: bool = True, tta: bool | Sequence[float] = False,
                        tile: tuple[int, int] | None = None, precision: str = "auto") -> "Predictor":
        """Load a checkpoint path, run folder or shipped model name; `size` overrides the trained input
        size ('native': each frame at its own size); `backend` picks the engine ('torch': the Winograd
        network on the CPU unless `winograd` is False; 'onnx' or 'openvino'); `tta` adds the mirrored
        frame; `tile` runs windows of that size over frames at their own size; `precision` (auto, fp32,
        bf16) is what the torch backend computes in (`engines.resolve_precision`). An exported .onnx file
        (fp32 or INT8) runs in onnxruntime, or OpenVINO if asked, with its stored metadata."""
        tta_scales(tta)  # checked now: a bad scale is reported before the model is loaded or exported
        native = size == "native"
        size = None if native else size
        if str(name).endswith(".onnx"):
            p = cls.from_onnx(name, size, backend)
            return cls(p.engine, p.table, p.input, p.meta, native, tta, tile)
        ckpt = load_checkpoint(name)
        model = build_model(ckpt)
        description = {**ckpt["input"], "size": list(size or ckpt["input"]["size"]),
                       "size_multiple": model.size_multiple}
        check_size(description["size"], model.size_multiple)  # before any export work for onnx/openvino
        onnx = None
        if backend in ("onnx", "openvino"):
            from .export import onnx_bytes
            onnx = onnx_bytes(ckpt)
        dev = device if backend == "torch" else "cpu"
        engine = make_engine(backend, model=model, onnx=onnx, device=dev, winograd=winograd,
                             precision=resolve_precision(precision, pick_device(dev), ckpt.get("card")))
        return cls(engine, class_table_of(ckpt), description, ckpt, native, tta, tile)

    @classmethod
    def from_onnx(cls, path: str | Path, size: tuple[int, int] | None = None, backend: str = "onnx") -> "Predictor":
        """A predictor running an .onnx file written by `roadseg export` in onnxruntime or OpenVINO."""
        from .export import read_metadata
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "file not found", "check the path")
        meta = read_metadata(path)
        description = {**meta["input"], "size": list(size or meta["input"]["size"]),
                       "size_multiple": size_multiple_of(meta)}
        engine = make_engine("onnx" if backend == "torch" else backend, onnx=path.read_bytes())
        return cls(engine, ClassTable.from_dict(meta["classes"]), description, meta)

    @torch.no_grad()
    def run(self, x: torch.Tensor) -> torch.Tensor:
        """The engine's logits for a float NCHW batch; under `tta` the mean of the logits of the batch
        and its mirror at each TTA scale (resized to the nearest multiple of the network's, the logits
        resized back to the batch's size)."""
        if not self.tta:
            return self.engine(x)
        total = torch.zeros(())
        for scale in self.tta:
            xs = x
            if scale != 1.0:
                size = [max(self.multiple, round(d * scale / self.multiple) * self.multiple) for d in x.shape[-2:]]
                xs = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
            logits = self.engine(xs) + self.engine(xs.flip(3).contiguous()).flip(3)
            if logits.shape[-2:] != x.shape[-2:]:
                logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
            total = total + logits
        return total / (2 * len(self.tta))

    @torch.no_grad()
    def logits(self, images: np.ndarray, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        """fp32 logits for uint8 NxHxWx3 frames already at the model size; upsampled (bilinear) to
        `out_size` if given."""
        logits = self.run(self.preprocess.tensor(images))
        if out_size is not None and tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)
        return logits

    @torch.no_grad()
    def frame_logits(self, image: np.ndarray) -> torch.Tensor:
        """(1,C,H,W) logits at one uint8 HxWx3 frame's own size: resized to the model size and back,
        or with `native` padded to the network's multiple and cropped back."""
        h, w = image.shape[:2]
        if not self.native:
            return self.logits(self.preprocess.resize(image)[None], (h, w))
        if self.tile is not None:
            return self._tiled(image)
        m = self.multiple
        padded = np.pad(image, ((0, -h % m), (0, -w % m), (0, 0)), mode="edge")
        return self.run(self.preprocess.tensor(padded[None]))[:, :, :h, :w]

    def _tiled(self, image: np.ndarray, batch: int = 4) -> torch.Tensor:
        """Logits from windows of self.tile at a third's overlap, averaged where they overlap."""
        (th, tw), (h, w) = self.tile, image.shape[:2]
        padded = np.pad(image, ((0, max(th - h, 0)), (0, max(tw - w, 0)), (0, 0)), mode="edge")
        big_h, big_w = padded.shape[:2]
        starts = []
        for size, tile in ((big_h, th), (big_w, tw)):
            step = max(1, tile * 2 // 3)
            offsets = list(range(0, size - tile + 1, step))
            starts.append(offsets if offsets[-1] == size - tile else offsets + [size - tile])
        windows = [(y, x) for y in starts[0] for x in starts[1]]
        total = count = None
        for i in range(0, len(windows), batch):
            part = windows[i:i + batch]
            logits = self.run(self.preprocess.tensor(np.stack([padded[y:y + th, x:x + tw] for y, x in part])))
            if total is None:
                total = torch.zeros(logits.shape[1], big_h, big_w)
                count = torch.zeros(1, big_h, big_w)
            for (y, x), one in zip(part, logits):
                total[:, y:y + th, x:x + tw] += one
                count[:, y:y + th, x:x + tw] += 1
        return (total / count)[None, :, :h, :w]

    def ids(self, images: np.ndarray, out_size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 class ids (N,H,W) for uint8 frames at the model size, at `out_size` if given."""
        return upsample_ids(self.logits(images), out_size)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 RGB (uint8, or float in [0,1]; HxW grey and HxWx4 also taken) -> HxW uint8 class ids
        at the same resolution."""
        image = as_rgb_uint8(image)
        if self.native:
            return to_ids(self.frame_logits(image))[0]
        return self.ids(self.preprocess.resize(image)[None], image.shape[:2])[0]

    @torch.no_grad()
    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """HxWxC float32 class probabilities (softmax) at one frame's own resolution."""
        return self.frame_logits(as_rgb_uint8(image))[0].softmax(0).permute(1, 2, 0).contiguous().numpy()

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Several frames (any sizes) -> their id masks."""
        images = [as_rgb_uint8(im) for im in images]
        if self.native:
            return [to_ids(self.frame_logits(im))[0] for im in images]
        logits = self.run(self.preprocess(images))
        return [upsample_ids(logits[i:i + 1], image.shape[:2])[0] for i, image in enumerate(images)]
