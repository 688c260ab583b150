"""Inference engines: every backend behind one interface. An engine is called with float NCHW images
in [0,1] (a CPU tensor) and returns fp32 logits (N,C,H,W) as a CPU tensor; it never sees files,
uint8 frames or masks (the Predictor owns pre- and postprocessing).

  torch     eager PyTorch on the CPU (fp32, or bf16 with --precision)   TorchEngine
            or CUDA (autocast)
  winograd  roadseg's Winograd network, fp32 on the CPU (the default    WinogradEngine
            there), for networks it supports; other networks, or no
            C++ compiler, fall back to eager with a one-line note
  onnx      onnxruntime on the CPU, ONNX bytes (fp32 or INT8 QDQ)       OnnxEngine
  openvino  OpenVINO on the CPU, ONNX bytes, compiled per input shape   OpenVinoEngine

fp32 engines run in fp32 (OpenVINO is told not to drop to bf16), so their logits match PyTorch's
within 1e-4. `resolve_precision` turns --precision auto|fp32|bf16 into what the torch engine computes in.

Usage::

    engine = make_engine("torch", model=net)            # winograd on the CPU unless winograd=False
    engine = make_engine("openvino", onnx=onnx_bytes)   # or "onnx"
    logits = engine(images)                             # (N,3,H,W) float32 -> (N,C,H,W) float32
"""
from __future__ import annotations

import io
from typing import Any, Protocol

import numpy as np
import torch

from ..accel.fused import fuse_conv_relu
from ..device import autocast, cpu_has_native_bf16, pick_device
from ..errors import InputError, note_once, require
from ..nets import SegNet
from ..nets.base import fold_batch_norms

BACKENDS = ("torch", "onnx", "openvino")
PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(precision: str, device: torch.device, card: dict[str, Any] | None = None) -> str:
    """What the torch engine computes in: 'fp32', 'bf16' or (CUDA's default) 'amp', its autocast dtype.
    'auto' on the CPU is bf16 only where the CPU has native bf16 (AVX512-BF16, AMX) and the model card
    records `precision: bf16` (set when its val mIoU in bf16 was within 0.2 points of fp32); else fp32."""
    if precision not in PRECISIONS:
        raise InputError(None, f"unknown precision '{precision}'", f"use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "amp"
    checked = str((card or {}).get("precision", "")).split()[:1] == ["bf16"]
    return "bf16" if checked and cpu_has_native_bf16() else "fp32"


class Engine(Protocol):
    """What the Predictor calls."""

    name: str

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class TorchEngine:
    """Eager PyTorch, channels-last on the CPU: `precision` 'fp32', 'bf16' (autocast) or 'amp' (CUDA's
    autocast dtype, the CUDA default); logits come back fp32 on the CPU. It runs a copy of the model
    with its batch norms folded into the convolutions (`nets.base.fold_batch_norms`), in bf16 with its
    convolution weights stored in bf16 (the same numbers as autocast casting them each call); on the
    CPU each convolution runs with the ReLU after it as one oneDNN primitive (`accel.fused`)."""

    name = "torch"

    def __init__(self, model: SegNet, device: str | torch.device = "auto", precision: str = "auto") -> None:
        self.device = pick_device(device) if isinstance(device, str) else device
        self.precision = resolve_precision(precision, self.device)
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.preserve_format
        self.model = fold_batch_norms(model).to(self.device, memory_format=self.memory_format)
        if self.device.type == "cpu":  # fp32 or bf16 there ('amp' is CUDA's)
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
            self.model = fuse_conv_relu(self.model, dtype, inplace=True)  # self.model is already a copy
        if self.precision == "bf16":  # autocast would cast these weights again on every call
            for layer in self.model.modules():
                if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                    layer.to(torch.bfloat16)

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """The logits on the engine's device, in the precision they were computed in."""
        if self.precision == "bf16":
            context = torch.autocast(self.device.type, dtype=torch.bfloat16)
        else:
            context = autocast(self.device, enabled=self.precision == "amp")
        with context:
            return self.model(images.to(self.device, memory_format=self.memory_format))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images).float().cpu()


class WinogradEngine:
    """roadseg's Winograd network (`roadseg.accel`), built on the first call (so loading a model
    compiles nothing); where it cannot run (a network it does not support, no compiler, a failed
    self-check) it says so in one line and runs `TorchEngine` instead."""

    def __init__(self, model: SegNet) -> None:
        self.model = model.eval()
        self.fast: Any = None
        self.fallback: TorchEngine | None = None  # built only where the Winograd network cannot run
        self._prepared = False

    @property
    def name(self) -> str:
        return "winograd" if self.prepare().fast is not None else "torch"

    def prepare(self) -> "WinogradEngine":
        """Build the Winograd network now (compiling the kernels on first use on this machine)."""
        if not self._prepared:
            from ..accel.winograd import WinogradUNet, supports, unavailable_reason
            self._prepared = True
            if not supports(self.model):
                note_once(f"roadseg: the Winograd CPU network does not support '{self.model.arch}'; "
                          "running PyTorch's convolutions")
            elif unavailable_reason():
                note_once(f"roadseg: Winograd CPU kernels not used ({unavailable_reason()}); "
                          "running PyTorch's convolutions")
            else:
                self.fast = WinogradUNet(self.model)
            if self.fast is None:
                self.fallback = TorchEngine(self.model, torch.device("cpu"))
        return self

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        engine = self.prepare()
        return engine.fast(images) if engine.fast is not None else engine.fallback(images)


def onnx_session(data: bytes) -> Any:
    """An onnxruntime CPU session for ONNX bytes."""
    ort = require("onnxruntime", "onnx", "the onnx backend")
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


class OnnxEngine:
    """onnxruntime on the CPU."""

    name = "onnx"

    def __init__(self, data: bytes) -> None:
        self.session = onnx_session(data)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(images.numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"images": x})[0])


class OpenVinoEngine:
    """OpenVINO on the CPU, compiled once per input shape (static shapes run fastest; compiling the
    notebook network takes well under a second)."""

    name = "openvino"

    def __init__(self, data: bytes, threads: int | None = None) -> None:
        """`threads`: how many CPU threads it may use (None: OpenVINO's choice, every core)."""
        ov = require("openvino", "openvino", "the openvino backend")
        self._ov, self._core = ov, ov.Core()
        self._model = self._core.read_model(io.BytesIO(data))
        self._compiled: dict[tuple[int, ...], Any] = {}
        self._config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = str(int(threads))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        shape = tuple(images.shape)
        compiled = self._compiled.get(shape)
        if compiled is None:
            model = self._model.clone()
            model.reshape({model.inputs[0]: self._ov.PartialShape(list(shape))})
            compiled = self._core.compile_model(model, "CPU", self._config)
            self._compiled[shape] = compiled
        return torch.from_numpy(np.array(compiled(np.ascontiguousarray(images.numpy(), dtype=np.float32))[0]))


def make_engine(backend: str, model: SegNet | None = None, onnx: bytes | None = None, device: str = "auto",
                winograd: bool = True, precision: str = "fp32") -> Engine:
    """The engine for `backend`: 'torch' runs `model` in `precision` (see resolve_precision; fp32 on the
    CPU as the Winograd network when `winograd` and it runs the network), 'onnx' and 'openvino' run
    `onnx` bytes in fp32."""
    if backend == "torch":
        if model is None:
            raise InputError(None, "an exported .onnx model runs on the onnx or openvino backend",
                             "use --backend onnx or --backend openvino")
        dev = pick_device(device)
        if winograd and dev.type == "cpu" and resolve_precision(precision, dev) == "fp32":
            from ..accel.winograd import supports  # the notebook's U-Net: other networks run as PyTorch's, silently
            if supports(model):
                return WinogradEngine(model)
        return TorchEngine(model, dev, precision)
    if backend in ("onnx", "openvino"):
        if onnx is None:
            raise ValueError("the onnx and openvino engines need ONNX bytes")
        return OnnxEngine(onnx) if backend == "onnx" else OpenVinoEngine(onnx)
    raise InputError(None, f"unknown backend '{backend}'", f"use one of {', '.join(BACKENDS)}")

