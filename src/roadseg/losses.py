"""Training losses on logits and sparse labels.

Usage: ``loss = make_loss("ce", ignore_index=None)(logits, masks)``
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

LOSSES = ("ce",)


def make_loss(name: str = "ce", ignore_index: int | None = None,
              class_weights: torch.Tensor | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Sparse categorical cross-entropy on logits (the notebook's loss), respecting `ignore_index`."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {LOSSES}")
    ignore = -100 if ignore_index is None else ignore_index

    def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = None if class_weights is None else class_weights.to(logits.device, logits.dtype)
        return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore)

    return cross_entropy
