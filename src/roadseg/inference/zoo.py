"""The shipped models as a table (`roadseg models`): name, network, parameters, GFLOPs at the model's
input size, CamVid val mIoU from its card, INT8 frames/s (from the card, or measured here with
`--speed`: OpenVINO, batch 1, at the model's size) and the licence note.

Usage: ``print(models_table(measure=False))``
"""
from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import torch

from ..checkpoint import build_model, load_checkpoint, shipped_names
from ..nets.ensemble import network_label


def forward_gflops(model: torch.nn.Module, size: tuple[int, int], in_channels: int = 3) -> float:
    """GFLOPs (2 per multiply-add) of one forward pass at `size`."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, in_channels, *size))
    return counter.get_total_flops() / 1e9


def val_miou(card: dict[str, Any]) -> float | None:
    """The CamVid val mIoU a model card records ('val_miou', or the mIoU of its 'val_full_res' line)."""
    if "val_miou" in card:
        return float(str(card["val_miou"]).split()[0])
    found = re.search(r"mIoU ([0-9.]+)", str(card.get("val_full_res", "")))
    return float(found.group(1)) if found else None


def int8_fps(ckpt: dict[str, Any], repeats: int = 20) -> float:
    """INT8 frames/s in OpenVINO at batch 1 and the model's size, on this machine (calibrated on noise:
    the speed does not depend on the ranges)."""
    from .engines import OpenVinoEngine
    from .export import onnx_bytes, quantize_int8
    from .processing import Preprocess
    h, w = ckpt["input"]["size"]
    frames = np.random.default_rng(0).integers(0, 256, (4, h, w, 3), dtype=np.uint8)
    pre = Preprocess(ckpt["input"])
    return engine_fps(OpenVinoEngine(quantize_int8(onnx_bytes(ckpt), frames, pre)), pre.tensor(frames[:1]), repeats)


def engine_fps(engine: Any, x: torch.Tensor, repeats: int = 20) -> float:
    """Frames/s of an engine on the batch `x`: one warm-up call (building, compiling), then `repeats`."""
    engine(x)
    t0 = time.perf_counter()
    for _ in range(repeats):
        engine(x)
    return repeats * len(x) / (time.perf_counter() - t0)


def models_table(measure: bool = False) -> str:
    """One row per shipped model."""
    rows = [("name", "network", "params", "GFLOPs", "size", "val mIoU", "INT8 fps", "licence")]
    for name in shipped_names():
        ckpt = load_checkpoint(name)
        model, card = build_model(ckpt), ckpt.get("card", {})
        size = tuple(ckpt["input"]["size"])
        miou = val_miou(card)
        fps = f"{int8_fps(ckpt):.0f} (here)" if measure else str(card.get("int8_fps", "-")).split(" (")[0]
        licence = str(card.get("dataset", card.get("license", "-")))
        licence = "research / non-commercial" if "non-commercial" in licence else licence[:30]
        network = network_label(ckpt["model"]["arch"], ckpt["model"]["settings"])
        rows.append((name, network, f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M",
                     f"{forward_gflops(model, size, model.in_channels):.1f}", f"{size[0]}x{size[1]}",
                     f"{miou:.3f}" if miou is not None else "-", fps, licence))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
