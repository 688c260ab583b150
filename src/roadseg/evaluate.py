"""Evaluation of a checkpoint on a dataset split: confusion matrix over the whole set, pixel
accuracy, per-class IoU, mean IoU, frequency-weighted IoU and mean class accuracy.

Usage::

    report = evaluate("runs/demo/train/best.pt", "data", split="val")
    print(format_report(report))
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import SampleCache, check_ids, discover, load_pair, parse_size, select_split
from .imageio import atomic_write
from .metrics import ConfusionMatrix
from .predict import Predictor


def evaluate(model: str | Path, data: str | Path, fmt: str = "auto", split: str = "val",
             size: str | None = None, full_res: bool = False, batch_size: int = 16,
             device: str = "auto", progress: bool = False) -> dict[str, Any]:
    """Score a checkpoint (path or shipped name) on one split of a dataset."""
    predictor = Predictor.from_checkpoint(model, device, parse_size(size) if size else None)
    table = predictor.table
    layout = discover(data, fmt)
    meta_data = predictor.meta.get("data", {})
    pairs = select_split(layout, split, meta_data.get("val_fraction", 0.2), meta_data.get("seed", 0))
    cm = ConfusionMatrix(table.num_classes, table.ignore_index)
    if full_res:
        # Every file is decoded and checked first, so a bad file fails before any scoring.
        samples = [load_pair(p, predictor.size, predictor.resize, mask_size=None) for p in pairs]
        for pair, (image, mask) in zip(pairs, samples):
            check_ids(mask, pair.mask, table.num_classes, table.ignore_index)
        for image, mask in samples:
            pred = predictor.logits(image[None], mask.shape).argmax(1).cpu()
            cm.update(pred, torch.from_numpy(mask))
    else:
        cache = SampleCache.load(pairs, predictor.size, table.num_classes, table.ignore_index,
                                 predictor.resize, progress)
        for start in range(0, len(cache), batch_size):
            images = cache.images[start:start + batch_size].numpy()
            pred = predictor.logits(images).argmax(1).cpu()
            cm.update(pred, cache.masks[start:start + batch_size])
    scores = cm.compute()
    return {
        "model": str(model),
        "data": str(layout.root),
        "format": layout.format,
        "split": split,
        "size": list(predictor.size),
        "full_res": full_res,
        "num_images": len(pairs),
        "pixel_accuracy": scores["pixel_accuracy"],
        "mean_iou": scores["mean_iou"],
        "frequency_weighted_iou": scores["frequency_weighted_iou"],
        "mean_class_accuracy": scores["mean_class_accuracy"],
        "per_class_iou": {n: _clean(v) for n, v in zip(table.names, scores["per_class_iou"])},
        "per_class_accuracy": {n: _clean(v) for n, v in zip(table.names, scores["per_class_accuracy"])},
        "class_pixel_share": {n: float(s) for n, s in zip(table.names, _shares(cm.matrix))},
        "confusion_matrix": cm.matrix.tolist(),
        "class_names": list(table.names),
    }


def _clean(v: float) -> float | None:
    return None if math.isnan(v) else v


def _shares(matrix: torch.Tensor) -> np.ndarray:
    gt = matrix.sum(1).double()
    return (gt / gt.sum().clamp(min=1)).numpy()


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of the scores."""
    lines = [f"{report['num_images']} images, split {report['split']}, "
             f"{'full resolution' if report['full_res'] else 'size ' + 'x'.join(map(str, report['size']))}",
             f"{'class':<14}{'IoU':>8}{'acc':>8}{'share':>8}"]
    for name in report["class_names"]:
        iou, acc = report["per_class_iou"][name], report["per_class_accuracy"][name]
        share = report["class_pixel_share"][name]
        fmt = lambda v: f"{v:8.4f}" if v is not None else f"{'-':>8}"  # noqa: E731
        lines.append(f"{name:<14}{fmt(iou)}{fmt(acc)}{share:8.2%}")
    lines.append(f"pixel accuracy          {report['pixel_accuracy']:.4f}")
    lines.append(f"mean IoU                {report['mean_iou']:.4f}")
    lines.append(f"frequency-weighted IoU  {report['frequency_weighted_iou']:.4f}")
    lines.append(f"mean class accuracy     {report['mean_class_accuracy']:.4f}")
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: str | Path) -> Path:
    """Write the report as JSON (NaN-free), atomically."""
    text = json.dumps(report, indent=2)
    return atomic_write(path, lambda tmp: tmp.write_text(text))
