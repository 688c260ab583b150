"""Exporting checkpoints: a slim (optionally half-precision) .pt for shipping, or ONNX with dynamic
batch and size for onnxruntime, checked against PyTorch on export.

Usage::

    export_pt("runs/camvid/best.pt", "models/camvid.pt", half=True, card={"license": "..."})
    export_onnx("runs/camvid/best.pt", "camvid.onnx")      # CLI: roadseg export --model CKPT --format onnx OUT
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import build_model, load_checkpoint, save_checkpoint
from .errors import InputError
from .imageio import atomic_write

ONNX_OPSET = 17
KEEP = ("model", "classes", "input", "data", "training", "card")


def slim_checkpoint(ckpt: dict[str, Any], half: bool = False, card: dict[str, str] | None = None) -> dict[str, Any]:
    """The parts a user of the model needs (no optimizer or random state), weights in fp16 if `half`."""
    slim = {k: ckpt[k] for k in KEEP if k in ckpt}
    state = ckpt["model"]["state_dict"]
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    slim["model"] = {**ckpt["model"], "state_dict": state}
    slim["card"] = {**ckpt.get("card", {}), **(card or {})}
    return slim


def export_pt(model: str | Path, out: str | Path, half: bool = False, card: dict[str, str] | None = None) -> Path:
    """Write a slim checkpoint (loads with roadseg like any other)."""
    return save_checkpoint(slim_checkpoint(load_checkpoint(model), half, card), out)


def onnx_bytes(ckpt: dict[str, Any]) -> bytes:
    """The checkpoint's network as an ONNX model: input 'images' (N,3,H,W) float in [0,1], output
    'logits' (N,C,H,W); batch, height and width are dynamic (multiples of 16)."""
    import warnings
    model = build_model(ckpt)
    h, w = ckpt["input"]["size"]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, model.settings["in_channels"], h, w),), buf, dynamo=False,
                          input_names=["images"], output_names=["logits"], opset_version=ONNX_OPSET,
                          dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                        "logits": {0: "batch", 2: "height", 3: "width"}})
    return buf.getvalue()


def onnx_session(data: bytes, threads: int = 0):
    """An onnxruntime CPU session for ONNX bytes (onnxruntime is an optional extra)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError(None, "the onnx backend needs onnxruntime", "pip install 'roadseg[onnx]'") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def export_onnx(model: str | Path, out: str | Path, tolerance: float = 1e-4) -> Path:
    """Write ONNX and check onnxruntime's logits against PyTorch's (max abs difference <= tolerance)."""
    ckpt = load_checkpoint(model)
    data = onnx_bytes(ckpt)
    h, w = ckpt["input"]["size"]
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = build_model(ckpt)(x).numpy()
    got = onnx_session(data).run(None, {"images": x.numpy()})[0]
    diff = float(np.abs(got - expected).max())
    if diff > tolerance:
        raise InputError(out, f"ONNX logits differ from PyTorch's by {diff:.2e} (> {tolerance})",
                         "report this; use the torch backend meanwhile")
    return atomic_write(out, lambda tmp: tmp.write_bytes(data))
