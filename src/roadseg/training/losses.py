"""Training losses on logits and sparse labels: cross-entropy (the notebook's), soft Dice, or both.

Usage: ``loss = make_loss("ce+dice", ignore_index=11, class_weights=w)(logits, masks)``
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

LOSSES = ("ce", "dice", "ce+dice")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Sparse categorical cross-entropy on logits, pixels of `ignore_index` left out."""
    if weight is not None:
        weight = weight.to(logits.device, torch.float32)
    if logits.ndim == 4 and logits.is_contiguous(memory_format=torch.channels_last):
        # NCHW logits stored as NHWC: the (pixels, classes) view costs no copy, and the log-softmax
        # over its contiguous rows is about ten times faster than over the strided class dimension.
        logits, target = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1]), target.reshape(-1)
    return F.cross_entropy(logits.float(), target, weight=weight,
                           ignore_index=-100 if ignore_index is None else ignore_index)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None,
              eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice, averaged over the classes present in the batch (truth or prediction mass)."""
    num_classes = logits.shape[1]
    probs = logits.float().softmax(1)
    valid = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target)).clamp(max=num_classes - 1)
    onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).float()
    v = valid.unsqueeze(1).float()
    probs, onehot = probs * v, onehot * v
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    dice = (2 * inter + eps) / (denom + eps)
    return 1 - dice[present].mean() if present.any() else logits.sum() * 0


def make_loss(name: str = "ce", ignore_index: int | None = None,
              class_weights: torch.Tensor | None = None) -> LossFn:
    """The named loss as a function of (logits, target)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {LOSSES}")

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros((), dtype=torch.float32)
        if "ce" in name.split("+"):
            total = total + cross_entropy(logits, target, ignore_index, class_weights)
        if "dice" in name.split("+"):
            total = total + dice_loss(logits, target, ignore_index)
        return total

    return loss
