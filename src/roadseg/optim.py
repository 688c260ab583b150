"""Optimizer, learning-rate schedule and class weights of a training run.

Usage::

    opt = make_optimizer(model.parameters(), "adamw", lr=1e-3, weight_decay=1e-4)
    sched = make_scheduler(opt, "poly", epochs=100, steps_per_epoch=46, warmup_epochs=2)
    weights = class_weights("median-frequency", train_masks, num_classes=11, ignore_index=11)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import torch
import yaml

from .errors import InputError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "poly", "onecycle", "cosine")


def make_optimizer(params: Iterable[torch.nn.Parameter], name: str, lr: float,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam (the notebook's), AdamW (decoupled weight decay) or SGD with momentum."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True)
    raise InputError(None, f"unknown optimizer '{name}'", f"use one of {', '.join(OPTIMIZERS)}")


def lr_factor(step: int, total: int, warmup: int, kind: str) -> float:
    """Multiplier of the base learning rate at `step` of `total` (linear warm-up first)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind == "none":
        return 1.0
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    if kind == "poly":
        return (1.0 - progress) ** 0.9
    if kind == "cosine":
        import math
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise InputError(None, f"unknown schedule '{kind}'", f"use one of {', '.join(SCHEDULES)}")


def make_scheduler(optimizer: torch.optim.Optimizer, kind: str, epochs: int, steps_per_epoch: int,
                   warmup_epochs: float = 0.0) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step schedule: none, poly (power 0.9), cosine, or onecycle, each after linear warm-up."""
    total = max(epochs * steps_per_epoch, 1)
    warmup = int(round(warmup_epochs * steps_per_epoch))
    if kind == "onecycle":
        max_lr = optimizer.param_groups[0]["lr"]
        pct = min(max(warmup / total, 0.01), 0.5) if warmup else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total, pct_start=pct)
    if kind not in SCHEDULES:
        raise InputError(None, f"unknown schedule '{kind}'", f"use one of {', '.join(SCHEDULES)}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, warmup, kind))


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
