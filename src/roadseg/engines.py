"""Inference engines for exported networks: onnxruntime and OpenVINO (both optional extras).

An engine takes ONNX bytes (fp32, or INT8 QDQ from ``roadseg export --format onnx-int8``) and is
called with float NCHW images in [0,1]; it returns the logits as a NumPy array. fp32 engines run
in fp32 (OpenVINO is told not to drop to bf16), so their logits match PyTorch's within 1e-4.

Usage::

    engine = make_engine("openvino", onnx_bytes(ckpt))   # or "onnx"
    logits = engine(images)                               # (N,3,H,W) float32 -> (N,C,H,W)
"""
from __future__ import annotations

import io
from typing import Any, Callable

import numpy as np

from .errors import InputError

BACKENDS = ("torch", "onnx", "openvino")
Engine = Callable[[np.ndarray], np.ndarray]


def onnx_session(data: bytes) -> Any:
    """An onnxruntime CPU session for ONNX bytes."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError(None, "the onnx backend needs onnxruntime", "pip install 'roadseg[onnx]'") from None
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


class OnnxEngine:
    """onnxruntime on the CPU."""

    def __init__(self, data: bytes) -> None:
        self.session = onnx_session(data)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"images": np.ascontiguousarray(images, dtype=np.float32)})[0]


class OpenVinoEngine:
    """OpenVINO on the CPU, compiled once per input shape (static shapes run fastest; compiling the
    notebook network takes well under a second)."""

    def __init__(self, data: bytes) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise InputError(None, "the openvino backend needs OpenVINO", "pip install 'roadseg[openvino]'") from None
        self._ov, self._core = ov, ov.Core()
        self._model = self._core.read_model(io.BytesIO(data))
        self._compiled: dict[tuple[int, ...], Any] = {}

    def __call__(self, images: np.ndarray) -> np.ndarray:
        shape = tuple(images.shape)
        compiled = self._compiled.get(shape)
        if compiled is None:
            model = self._model.clone()
            model.reshape({model.inputs[0]: self._ov.PartialShape(list(shape))})
            compiled = self._core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                               "INFERENCE_PRECISION_HINT": "f32"})
            self._compiled[shape] = compiled
        return compiled(np.ascontiguousarray(images, dtype=np.float32))[0]


def make_engine(backend: str, data: bytes) -> Engine:
    """The named engine ('onnx' or 'openvino') for ONNX bytes."""
    if backend == "onnx":
        return OnnxEngine(data)
    if backend == "openvino":
        return OpenVinoEngine(data)
    raise InputError(None, f"unknown backend '{backend}'", f"use one of {', '.join(BACKENDS)}")
