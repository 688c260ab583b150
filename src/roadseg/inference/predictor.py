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
from .engines import Engine, make_engine
from .processing import Preprocess, as_rgb_uint8, to_ids


class Predictor:
    """An engine with the class table and input description of its model."""

    def __init__(self, engine: Engine, table: ClassTable, input: dict[str, Any],
                 meta: dict[str, Any] | None = None) -> None:
        self.engine, self.table, self.input = engine, table, dict(input)
        self.preprocess = Preprocess(input)
        self.meta = meta or {}
        check_size(self.size, int(input.get("size_multiple", 16)))

    @property
    def size(self) -> tuple[int, int]:
        return self.preprocess.size

    @property
    def resize(self) -> str:
        return self.preprocess.resize_mode

    @classmethod
    def from_checkpoint(cls, name: str | Path, device: str = "auto", size: tuple[int, int] | None = None,
                        backend: str = "torch", winograd: bool = True) -> "Predictor":
        """Load a checkpoint path, run folder or shipped model name; `size` overrides the trained input
        size; `backend` picks the engine ('torch': the Winograd network on the CPU unless `winograd` is
        False; 'onnx' or 'openvino'). An exported .onnx file (fp32 or INT8) runs in onnxruntime, or
        OpenVINO if asked, with its stored metadata."""
        if str(name).endswith(".onnx"):
            return cls.from_onnx(name, size, backend)
        ckpt = load_checkpoint(name)
        model = build_model(ckpt)
        description = {**ckpt["input"], "size": list(size or ckpt["input"]["size"]),
                       "size_multiple": model.size_multiple}
        check_size(description["size"], model.size_multiple)
        onnx = None
        if backend in ("onnx", "openvino"):
            from .export import onnx_bytes
            onnx = onnx_bytes(ckpt)
        engine = make_engine(backend, model=model, onnx=onnx, device=device if backend == "torch" else "cpu",
                             winograd=winograd)
        return cls(engine, class_table_of(ckpt), description, ckpt)

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
    def logits(self, images: np.ndarray, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        """fp32 logits for uint8 NxHxWx3 frames already at the model size; upsampled (bilinear) to
        `out_size` if given."""
        logits = self.engine(self.preprocess.tensor(images))
        if out_size is not None and tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)
        return logits

    def ids(self, images: np.ndarray, out_size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 class ids (N,H,W) for uint8 frames at the model size, at `out_size` if given."""
        return to_ids(self.logits(images, out_size))

    def predict(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 RGB (uint8, or float in [0,1]; HxW grey and HxWx4 also taken) -> HxW uint8 class ids
        at the same resolution."""
        image = as_rgb_uint8(image)
        return self.ids(self.preprocess.resize(image)[None], image.shape[:2])[0]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Several frames (any sizes) -> their id masks."""
        images = [as_rgb_uint8(im) for im in images]
        logits = self.engine(self.preprocess(images))
        out = []
        for i, image in enumerate(images):
            up = F.interpolate(logits[i:i + 1], size=image.shape[:2], mode="bilinear", align_corners=False)
            out.append(to_ids(up)[0])
        return out
