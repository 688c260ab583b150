"""Class weights for the loss, from a training split's per-frame id counts (median-frequency
balancing) or a file.

Usage: ``weights = class_weights("median-frequency", train.counts, num_classes=11, ignore_index=11)``
(``id_counts(masks)`` makes the counts from masks in memory). "median-frequency-augmented" is the same
balance over the counts of the augmented stream (``loader.augmented_counts``: crops, scales and class
copy-paste change how often a class is seen); the caller passes those counts.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import yaml

from ..errors import InputError
from .samples import id_counts  # noqa: F401  (re-exported: counts for class_weights)

AUGMENTED = "median-frequency-augmented"


def class_weights(spec: str, counts: np.ndarray, num_classes: int,
                  ignore_index: int | None = None) -> torch.Tensor | None:
    """None for 'none'; median-frequency balancing from the training frames' id counts (N, 256): a
    class's frequency is its pixels over the valid pixels of the frames it appears in; or a JSON/YAML list."""
    if spec in ("none", None, ""):
        return None
    if spec in ("median-frequency", AUGMENTED):
        c = torch.as_tensor(np.asarray(counts)[:, :num_classes], dtype=torch.float64).clone()
        if ignore_index is not None and ignore_index < num_classes:
            c[:, ignore_index] = 0
        valid = c.sum(1, keepdim=True)                      # each frame's pixels of real classes
        counts_total = c.sum(0)
        image_pixels = ((c > 0).double() * valid).sum(0)
        freq = torch.where(image_pixels > 0, counts_total / image_pixels.clamp(min=1), torch.zeros_like(counts_total))
        present = freq > 0
        median = freq[present].median()
        weights = torch.where(present, median / freq.clamp(min=1e-12), torch.zeros_like(freq))
        return weights.float()
    path = Path(spec)
    try:
        values = yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") else json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "class weights file not found",
                         f"use none, median-frequency, {AUGMENTED} or a JSON list") from None
    except (ValueError, yaml.YAMLError) as e:
        raise InputError(path, f"is not a valid weights file ({e})", "write a JSON list of numbers") from None
    if not isinstance(values, list) or len(values) != num_classes or not all(isinstance(v, (int, float)) for v in values):
        raise InputError(path, f"must hold a list of {num_classes} numbers", "one weight per class")
    return torch.tensor(values, dtype=torch.float32)
