"""`roadseg benchmark`: one table over every inference backend and format for a model, in the manner of
`yolo benchmark`: file size, first-call time (building or compiling included), single-frame latency,
frames/s at batch 1 and 8, and mIoU on a dataset's val split when one is given. A backend whose extra
is not installed is listed with the pip command instead.

Usage: ``rows = benchmark("camvid", data="../shared/data/camvid"); print(format_table(rows))``
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from ..checkpoint import build_model, class_table_of, load_checkpoint, resolve_model_path
from ..errors import InputError
from ..inference.engines import Engine, OnnxEngine, OpenVinoEngine, TorchEngine, WinogradEngine
from ..inference.predictor import Predictor
from ..inference.processing import Preprocess
from .evaluate import predict_frames
from .metrics import ConfusionMatrix

BACKENDS: list[tuple[str, str, str]] = [  # (name, format, extra)
    ("torch", "pt", ""), ("winograd", "pt", ""), ("onnxruntime", "onnx fp32", "onnx"),
    ("openvino", "onnx fp32", "openvino"), ("onnxruntime", "onnx int8", "onnx"), ("openvino", "onnx int8", "openvino")]


def _rate(fn: Callable[[], object], items: int, seconds: float = 1.5) -> float:
    """Items per second of `fn`, repeated for about `seconds` (at least three calls)."""
    calls, t0 = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - t0 < seconds:
        fn()
        calls += 1
    return calls * items / (time.perf_counter() - t0)


def benchmark(model: str, data: str | None = None, size: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """A row per backend (see the module doc); `size` overrides the model's input size."""
    from ..inference.export import onnx_bytes, quantize_int8
    path = resolve_model_path(model)
    ckpt = load_checkpoint(path)
    description = {**ckpt["input"], "size": list(size or ckpt["input"]["size"])}
    pre = Preprocess(description)
    h, w = pre.size
    frames = np.random.default_rng(0).integers(0, 256, (8, h, w, 3), dtype=np.uint8)
    x1, x8 = pre.tensor(frames[:1]), pre.tensor(frames)
    onnx: dict[str, bytes] = {}
    rows = []
    for name, fmt, extra in BACKENDS:
        row: dict[str, Any] = {"backend": name, "format": fmt}
        try:
            t0 = time.perf_counter()
            if fmt == "pt":
                net = build_model(ckpt)
                engine: Engine = TorchEngine(net, torch.device("cpu")) if name == "torch" else WinogradEngine(net)
                row["size_mb"] = path.stat().st_size / 1e6
                if name == "winograd" and engine.name != "winograd":
                    row["note"] = "the Winograd network does not run this model here"
                    rows.append(row)
                    continue
            else:
                if "fp32" not in onnx:
                    onnx["fp32"] = onnx_bytes(ckpt)
                if fmt.endswith("int8") and "int8" not in onnx:
                    onnx["int8"] = quantize_int8(onnx["fp32"], frames, pre)
                data_bytes = onnx["int8" if fmt.endswith("int8") else "fp32"]
                engine = OnnxEngine(data_bytes) if name == "onnxruntime" else OpenVinoEngine(data_bytes)
                row["size_mb"] = len(data_bytes) / 1e6
            engine(x1)
            row["first_call_s"] = time.perf_counter() - t0
            row["fps_b1"] = _rate(lambda: engine(x1), 1)
            row["latency_ms"] = 1000 / row["fps_b1"]
            row["fps_b8"] = _rate(lambda: engine(x8), 8)
            if data is not None:
                row["val_miou"] = _miou(Predictor(engine, class_table_of(ckpt), description, ckpt), data)
        except InputError as e:  # an optional extra that is not installed
            row["note"] = f"not installed: pip install 'roadseg[{extra}]'" if "pip install" in str(e) else str(e)
        rows.append(row)
    return rows


def _miou(predictor: Predictor, data: str) -> float:
    from ..data import discover, select_trained_split
    pairs = select_trained_split(discover(data), "val", predictor.meta.get("data", {}))
    table = predictor.table
    cm = ConfusionMatrix(table.num_classes, table.ignore_index)
    for frame in predict_frames(predictor, pairs, batch_size=8):
        cm.update(torch.from_numpy(frame.pred), torch.from_numpy(frame.mask))
    return cm.compute()["mean_iou"]


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table."""
    head = ["backend", "format", "size MB", "first call s", "latency ms", "fps b1", "fps b8", "val mIoU"]
    keys = ["backend", "format", "size_mb", "first_call_s", "latency_ms", "fps_b1", "fps_b8", "val_miou"]
    digits = {"size_mb": 1, "first_call_s": 2, "latency_ms": 1, "fps_b1": 1, "fps_b8": 1, "val_miou": 4}
    table = [head]
    for row in rows:
        cells = [f"{row[k]:.{digits[k]}f}" if isinstance(row.get(k), float) else str(row.get(k, "-")) for k in keys]
        if "note" in row:
            cells = cells[:2] + [row["note"]]
        table.append(cells)
    widths = [max(len(r[i]) for r in table if i < len(r)) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)
