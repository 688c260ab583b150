"""Optimizer and learning-rate schedule of a training run.

Usage::

    opt = make_optimizer(model.parameters(), "adamw", lr=1e-3, weight_decay=1e-4)
    sched = make_scheduler(opt, "poly", epochs=100, steps_per_epoch=46, warmup_epochs=2)
"""
from __future__ import annotations

from typing import Iterable

import torch

from ..errors import InputError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "poly", "onecycle", "cosine")


def make_optimizer(params: Iterable[torch.nn.Parameter], name: str, lr: float,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam (the notebook's), AdamW (decoupled weight decay) or SGD with momentum; fused into one
    kernel per step where the parameters' device has one (on a quiet 2-core CPU the per-tensor loop
    took 12-17 ms a step of the notebook's U-Net, fused 5 ms: benchmarks/RESULTS.md)."""
    params = list(params)
    if name == "adam":
        return _fused(torch.optim.Adam, params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return _fused(torch.optim.AdamW, params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return _fused(torch.optim.SGD, params, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True)
    raise InputError(None, f"unknown optimizer '{name}'", f"use one of {', '.join(OPTIMIZERS)}")


def _fused(cls: type[torch.optim.Optimizer], params: list, **settings: float | bool) -> torch.optim.Optimizer:
    """`cls` with fused=True, or without it where a parameter's device or dtype has no fused kernel."""
    try:
        return cls(params, fused=True, **settings)
    except (RuntimeError, ValueError, TypeError):
        return cls(params, **settings)


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
