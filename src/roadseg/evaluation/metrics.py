"""Segmentation metrics from a confusion matrix accumulated over a whole set.

Rows are the true class, columns the predicted class; pixels whose truth is the ignore id are
never counted.

Usage::

    cm = ConfusionMatrix(num_classes=23, ignore_index=None)
    cm.update(logits.argmax(1), masks)
    scores = cm.compute()            # pixel_accuracy, mean_iou, per-class IoU ...
"""
from __future__ import annotations

import math

import torch


class ConfusionMatrix:
    """Accumulates a num_classes x num_classes matrix of pixel counts (int64)."""

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add predicted and true id maps of the same shape."""
        pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
        valid = (target >= 0) & (target < self.num_classes)
        if self.ignore_index is not None:
            valid &= target != self.ignore_index
        index = target[valid] * self.num_classes + pred[valid].clamp(0, self.num_classes - 1)
        counts = torch.bincount(index, minlength=self.num_classes**2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes).cpu()

    def merge(self, other: torch.Tensor) -> None:
        """Add another matrix (e.g. from another process)."""
        self.matrix += other.to(self.matrix)

    def compute(self) -> dict:
        """All scores; classes with an empty union are left out of the mean IoU (see scores_from_matrix)."""
        return scores_from_matrix(self.matrix)


def scores_from_matrix(matrix: torch.Tensor) -> dict:
    """pixel_accuracy, per_class_iou (list), mean_iou, frequency_weighted_iou, per_class_accuracy,
    mean_class_accuracy and the number of counted pixels.

    The IoU rule is the common one (MMSegmentation, torchmetrics): a class counts wherever its union
    (truth or prediction) is non-empty, so a class predicted where the truth has none scores 0 and
    lowers the mean; classes with an empty union are NaN and left out. Accuracy (recall) is defined
    only for classes present in the truth."""
    m = matrix.double()
    tp = m.diag()
    gt = m.sum(1)
    pred = m.sum(0)
    total = m.sum()
    union = gt + pred - tp
    present = gt > 0
    seen = union > 0
    iou = torch.where(seen, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
    acc = torch.where(present, tp / gt.clamp(min=1), torch.full_like(tp, math.nan))
    freq = gt / total.clamp(min=1)

    def mean(v: torch.Tensor, where: torch.Tensor) -> float:
        return float(v[where].mean()) if where.any() else math.nan

    return {
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else math.nan,
        "mean_iou": mean(iou, seen),
        "per_class_iou": [float(v) for v in iou],
        "per_class_accuracy": [float(v) for v in acc],
        "mean_class_accuracy": mean(acc, present),
        "frequency_weighted_iou": float((freq[present] * iou[present]).sum()) if present.any() else math.nan,
        "pixels": int(total),
    }
