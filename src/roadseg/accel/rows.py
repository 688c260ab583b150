"""Kernels over the class rows of channels-last bf16 CPU logits, what a bf16 autocast step produces
(csrc/rows.cpp): `fused_cross_entropy`, the loss of F.cross_entropy (fp32 log-softmax, class weights,
ignore_index, mean) and its gradient in bf16 from one pass over the logits, taken by
`roadseg.training.losses.cross_entropy`; `fused_dice`, the soft Dice loss of `losses.dice_loss` from one
pass over the logits and its gradient from a second, taken by `losses.dice_loss`; `class_ids`, the argmax
over classes, taken by the trainer's metrics. Where the kernels are not built or do not apply, callers
use PyTorch's operators.

Usage::

    if fused_applies(logits, target):
        loss = fused_cross_entropy(logits, target, weight, ignore_index=11)
        dice = fused_dice(logits, target, ignore_index=11)   # None: use PyTorch's (a target out of range)
    ids = class_ids(logits)          # == logits.argmax(1)
    loss = reference_cross_entropy(logits, target, weight, ignore_index=11)  # PyTorch's, what the kernel matches
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from . import kernels

MAX_CLASSES = 256  # as in csrc/rows.cpp


def _rows_apply(logits: torch.Tensor) -> bool:
    """(N,C,H,W) channels-last bf16 CPU logits of at most MAX_CLASSES classes, the kernels available."""
    return (logits.device.type == "cpu" and logits.dtype == torch.bfloat16 and logits.dim() == 4
            and logits.is_contiguous(memory_format=torch.channels_last) and logits.shape[1] <= MAX_CLASSES
            and kernels.library() is not None)


def fused_applies(logits: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether `fused_cross_entropy` takes these: logits as `_rows_apply` says, (N,H,W) int64 targets."""
    return (target.dtype == torch.int64 and target.shape == (logits.shape[0], *logits.shape[2:])
            and _rows_apply(logits))


def class_ids(logits: torch.Tensor) -> torch.Tensor:
    """logits.argmax(1) as (N,H,W) int64, by the kernel for channels-last bf16 CPU logits."""
    if not _rows_apply(logits):
        return logits.argmax(1)
    out = torch.empty((logits.shape[0], *logits.shape[2:]), dtype=torch.int64)
    kernels.library().argmax_bf16(logits.data_ptr(), out.numel(), logits.shape[1], out.data_ptr(),
                                  torch.get_num_threads())
    return out


class _FusedCrossEntropy(torch.autograd.Function):
    """Forward computes the mean loss and, when a gradient is wanted, the bf16 gradient of the logits
    for a loss gradient of 1; backward hands it on (scaled when the loss gradient is not 1)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                ignore_index: int) -> torch.Tensor:
        target = target.contiguous()
        grad = torch.empty_like(logits) if ctx.needs_input_grad[0] else None
        sums = torch.zeros(2, dtype=torch.float64)
        bad = kernels.library().softmax_cross_entropy_bf16(
            logits.data_ptr(), target.data_ptr(), None if weight is None else weight.data_ptr(),
            target.numel(), logits.shape[1], ignore_index, None if grad is None else grad.data_ptr(),
            sums.data_ptr(), torch.get_num_threads())
        if bad >= 0 or sums[1] == 0:  # a target out of range, or no pixel counted: PyTorch's own error or NaN
            ctx.fallback = True
            ctx.save_for_backward(logits, target, weight)
            ctx.ignore_index = ignore_index
            return reference_cross_entropy(logits, target, weight, ignore_index)
        ctx.fallback, ctx.grad = False, grad
        return (sums[0] / sums[1]).to(torch.float32)

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if ctx.fallback:
            logits, target, weight = ctx.saved_tensors
            with torch.enable_grad():
                x = logits.detach().requires_grad_()
                loss = reference_cross_entropy(x, target, weight, ctx.ignore_index)
                (grad,) = torch.autograd.grad(loss, x, grad_loss)
            return grad, None, None, None
        grad = ctx.grad
        return (grad if bool(grad_loss == 1) else grad * grad_loss), None, None, None


def reference_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                            ignore_index: int) -> torch.Tensor:
    """PyTorch's F.cross_entropy in fp32 on the same rows (what the kernel reproduces)."""
    rows = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1]).float()
    return F.cross_entropy(rows, target.reshape(-1), weight=weight, ignore_index=ignore_index)


def fused_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                        ignore_index: int = -100) -> torch.Tensor:
    """Mean weighted cross-entropy of bf16 logits (see `fused_applies`), as an fp32 scalar with a gradient."""
    if weight is not None:
        weight = weight.to(torch.float32).contiguous()
    return _FusedCrossEntropy.apply(logits, target, weight, ignore_index)


class _FusedDice(torch.autograd.Function):
    """1 - the mean over the classes present in the truth of (2 I + eps) / (S + n + eps), from the kernel's
    per-class sums; backward runs the gradient kernel with dloss/dp = a[c] * (c == target) + b[c]."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, sums: torch.Tensor, ignore_index: int,
                eps: float) -> torch.Tensor:
        inter, mass, count = sums.view(3, -1)
        present = count > 0
        denom = mass + count + eps
        dice = (2 * inter + eps) / denom
        n = present.sum()
        ctx.save_for_backward(logits, target)
        ctx.ignore_index = ignore_index
        ctx.a = torch.where(present, -2 / (n * denom), 0).to(torch.float32)
        ctx.b = torch.where(present, (2 * inter + eps) / (n * denom * denom), 0).to(torch.float32)
        return (1 - dice[present].mean()).to(torch.float32)

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, target = ctx.saved_tensors
        scale = grad_loss.to(torch.float32)
        a, b = (ctx.a * scale).contiguous(), (ctx.b * scale).contiguous()
        grad = torch.empty_like(logits)
        kernels.library().dice_grad_bf16(logits.data_ptr(), target.data_ptr(), target.numel(), logits.shape[1],
                                         ctx.ignore_index, a.data_ptr(), b.data_ptr(), grad.data_ptr(),
                                         torch.get_num_threads())
        return grad, None, None, None, None


def fused_dice(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = -100,
               eps: float = 1.0) -> torch.Tensor | None:
    """The soft Dice loss of bf16 logits (see `fused_applies`) over the rows whose target is not
    `ignore_index`, as an fp32 scalar with a gradient; None where a target is neither ignore_index nor a
    class, or no class is present (the caller's PyTorch operators then say what they say)."""
    target = target.contiguous()
    sums = torch.zeros(3 * logits.shape[1], dtype=torch.float64)
    bad = kernels.library().dice_sums_bf16(logits.data_ptr(), target.data_ptr(), target.numel(), logits.shape[1],
                                           ignore_index, sums.data_ptr(), torch.get_num_threads())
    if bad >= 0 or not bool((sums[2 * logits.shape[1]:] > 0).any()):
        return None
    return _FusedDice.apply(logits, target, sums, ignore_index, eps)
