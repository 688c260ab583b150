"""Training losses on logits and sparse labels, summed when joined with '+': cross-entropy (`ce`,
the notebook's), cross-entropy with online hard-example mining (`ohem`: only the pixels whose true
class has probability under 0.7, at least 1/16 of the valid ones), soft Dice (`dice`) and the
Lovasz-softmax surrogate of the Jaccard index (`lovasz`, Berman et al., CVPR 2018).

Usage: ``loss = make_loss("ohem+lovasz", ignore_index=11, class_weights=w)(logits, masks)``
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

from ..accel.rows import fused_applies, fused_cross_entropy, fused_dice
from ..errors import InputError

TERMS = ("ce", "ohem", "dice", "lovasz")
LOSSES = ("ce", "dice", "ce+dice", "ohem", "ohem+dice", "lovasz", "ce+lovasz", "ohem+lovasz")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Sparse categorical cross-entropy on logits, pixels of `ignore_index` left out (bf16 channels-last
    CPU logits through roadseg.accel.rows's fused kernel, the same loss and gradient in one pass)."""
    if fused_applies(logits, target):
        return fused_cross_entropy(logits, target, weight, -100 if ignore_index is None else ignore_index)
    if weight is not None:
        weight = weight.to(logits.device, torch.float32)
    if logits.ndim == 4 and logits.is_contiguous(memory_format=torch.channels_last):
        # NCHW logits stored as NHWC: the (pixels, classes) view costs no copy, and the log-softmax
        # over its contiguous rows is about ten times faster than over the strided class dimension.
        logits, target = pixel_rows(logits), target.reshape(-1)
    return F.cross_entropy(logits.float(), target, weight=weight,
                           ignore_index=-100 if ignore_index is None else ignore_index)


def pixel_rows(logits: torch.Tensor) -> torch.Tensor:
    """(N,C,H,W) logits as (pixels, C) rows (for channels-last logits a view, no copy)."""
    return logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])


def labelled(target: torch.Tensor, num_classes: int, ignore_index: int | None) -> torch.Tensor:
    """Which pixels of `target`, flattened, carry a class id: in [0, num_classes) and not `ignore_index`."""
    labels = target.reshape(-1)
    keep = (labels >= 0) & (labels < num_classes)
    if ignore_index is not None:
        keep &= labels != ignore_index
    return keep


def _pixels(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(valid pixels, classes) float logits and their (valid pixels,) labels."""
    keep = labelled(target, logits.shape[1], ignore_index)
    return pixel_rows(logits).float()[keep], target.reshape(-1)[keep]


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None,
                       weight: torch.Tensor | None = None, threshold: float = 0.7,
                       min_fraction: float = 1 / 16) -> torch.Tensor:
    """Cross-entropy over the hard pixels only: those whose true class has probability below
    `threshold`, or the `min_fraction` of valid pixels with the highest loss if fewer are."""
    flat, labels = _pixels(logits, target, ignore_index)
    if labels.numel() == 0:
        return logits.sum() * 0
    if weight is not None:
        weight = weight.to(flat.device, torch.float32)
    losses = F.cross_entropy(flat, labels, weight=weight, reduction="none")
    with torch.no_grad():
        p_true = flat.softmax(1).gather(1, labels[:, None])[:, 0]
        hard = p_true < threshold
        n_min = max(1, int(labels.numel() * min_fraction))
        if int(hard.sum()) < n_min:
            hard = torch.zeros_like(hard)
            hard[losses.topk(n_min).indices] = True
    return losses[hard].mean()


def _lovasz_grad(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss with respect to the sorted errors."""
    total = fg_sorted.sum()
    intersection = total - fg_sorted.cumsum(0)
    union = total + (1 - fg_sorted).cumsum(0)
    jaccard = 1 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """The Lovasz-softmax loss over the batch, averaged over the classes present in the truth."""
    flat, labels = _pixels(logits, target, ignore_index)
    probs = flat.softmax(1)
    losses = []
    for c in labels.unique().tolist():
        fg = (labels == c).float()
        errors = (fg - probs[:, c]).abs()
        errors_sorted, order = errors.sort(descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(fg[order])))
    return torch.stack(losses).mean() if losses else logits.sum() * 0


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None,
              eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice, averaged over the classes present in the truth (bf16 channels-last CPU logits
    through roadseg.accel.rows's kernels: the same loss, its gradient rounded once to bf16)."""
    if fused_applies(logits, target):
        fused = fused_dice(logits, target, -100 if ignore_index is None else ignore_index, eps)
        if fused is not None:
            return fused
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
    """The named loss (terms of TERMS joined with '+') as a function of (logits, target)."""
    terms = name.split("+")
    if not terms or any(t not in TERMS for t in terms) or len(set(terms)) != len(terms) \
            or {"ce", "ohem"} <= set(terms):
        raise InputError(None, f"unknown loss {name!r}", f"choose one of {', '.join(LOSSES)}")

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros((), dtype=torch.float32)
        if "ce" in terms:
            total = total + cross_entropy(logits, target, ignore_index, class_weights)
        if "ohem" in terms:
            total = total + ohem_cross_entropy(logits, target, ignore_index, class_weights)
        if "dice" in terms:
            total = total + dice_loss(logits, target, ignore_index)
        if "lovasz" in terms:
            total = total + lovasz_softmax(logits, target, ignore_index)
        return total

    return loss
