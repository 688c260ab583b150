"""Class weights for the loss, from a training split's masks (median-frequency balancing) or a file.

Usage: ``weights = class_weights("median-frequency", train_masks, num_classes=11, ignore_index=11)``
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from ..errors import InputError


def class_weights(spec: str, masks: torch.Tensor, num_classes: int,
                  ignore_index: int | None = None) -> torch.Tensor | None:
    """None for 'none'; median-frequency balancing from the training masks; or a JSON/YAML list."""
    if spec in ("none", None, ""):
        return None
    if spec == "median-frequency":
        flat = masks.reshape(masks.shape[0], -1).long()
        counts = torch.zeros(num_classes, dtype=torch.float64)
        image_pixels = torch.zeros(num_classes, dtype=torch.float64)
        for m in flat:
            valid = m[(m < num_classes) & ((m != ignore_index) if ignore_index is not None else True)]
            c = torch.bincount(valid, minlength=num_classes).double()
            counts += c
            image_pixels += (c > 0).double() * valid.numel()
        freq = torch.where(image_pixels > 0, counts / image_pixels.clamp(min=1), torch.zeros_like(counts))
        present = freq > 0
        median = freq[present].median()
        weights = torch.where(present, median / freq.clamp(min=1e-12), torch.zeros_like(freq))
        return weights.float()
    path = Path(spec)
    try:
        values = yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") else json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "class weights file not found", "use none, median-frequency or a JSON list") from None
    except (ValueError, yaml.YAMLError) as e:
        raise InputError(path, f"is not a valid weights file ({e})", "write a JSON list of numbers") from None
    if not isinstance(values, list) or len(values) != num_classes or not all(isinstance(v, (int, float)) for v in values):
        raise InputError(path, f"must hold a list of {num_classes} numbers", "one weight per class")
    return torch.tensor(values, dtype=torch.float32)
