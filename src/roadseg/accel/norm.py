"""Batch normalisation of bf16 channels-last CPU maps by the native kernels (csrc/norm.cpp), for bf16
training on the CPU, where PyTorch's channels-last kernels are slow for narrow maps: `NativeBatchNorm`
is an nn.BatchNorm2d that, in training mode, normalises by the batch's statistics through the kernels
(fp32 sums, output and gradient rounded once to bf16) and updates the running statistics as PyTorch
does; in eval mode, and for other dtypes, layouts or devices, it is PyTorch's. `use_native_norm(model)`
swaps it in.

Usage: ``use_native_norm(model)  # in place; the same parameters and buffers, so state_dict is unchanged``
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import kernels


MAX_PERIOD = 64  # as in csrc/norm.cpp: C / gcd(C, 16) at most this
# The widest maps taken: PyTorch's channels-last kernels vectorise over the channels and are slowest for
# the narrowest maps (`resunet`'s 8-channel full-resolution branch); at 16 channels and more the step was
# no faster with the kernels (benchmarks/RESULTS.md, tenth session).
MAX_CHANNELS = 8


def native_applies(x: torch.Tensor) -> bool:
    """An (N,C,H,W) bf16 channels-last CPU map of at most MAX_CHANNELS channels and more than one value
    per channel, the kernels available."""
    return (x.device.type == "cpu" and x.dtype == torch.bfloat16 and x.dim() == 4
            and x.numel() > x.shape[1] > 0 and x.shape[1] <= MAX_CHANNELS
            and x.shape[1] // math.gcd(x.shape[1], 16) <= MAX_PERIOD
            and x.is_contiguous(memory_format=torch.channels_last) and kernels.library() is not None)


def _sums(p: torch.Tensor, q: torch.Tensor, kp: torch.Tensor, kq: torch.Tensor) -> torch.Tensor:
    """(2, C) fp64: per channel, sum(p - kp) and sum((p - kp) * (q - kq)) over channels-last p and q."""
    c = p.shape[1]
    out = torch.empty(2 * c, dtype=torch.float64)
    kp, kq = kp.to(torch.float32).contiguous(), kq.to(torch.float32).contiguous()
    kernels.library().rows_sums_bf16(p.data_ptr(), q.data_ptr(), p.numel(), c, kp.data_ptr(), kq.data_ptr(),
                                     out.data_ptr(), torch.get_num_threads())
    return out.view(2, c)


def _affine(p: torch.Tensor, q: torch.Tensor, a: torch.Tensor, b: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """a * p + b * q + d per channel, as a channels-last bf16 map."""
    out = torch.empty_like(p, memory_format=torch.channels_last)
    a, b, d = (t.to(torch.float32).contiguous() for t in (a, b, d))
    kernels.library().rows_affine_bf16(p.data_ptr(), q.data_ptr(), p.numel(), p.shape[1], a.data_ptr(),
                                       b.data_ptr(), d.data_ptr(), out.data_ptr(), torch.get_num_threads())
    return out


class _BatchNorm(torch.autograd.Function):
    """Training-mode batch normalisation; also returns the batch mean and biased variance (fp64)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c, count = x.shape[1], x.numel() // x.shape[1]
        shift = x[0, :, 0, 0].to(torch.float64)  # sums about a sample of each channel: no cancellation
        s1, s2 = _sums(x, x, shift, shift)
        mean = shift + s1 / count
        var = (s2 / count - (s1 / count) ** 2).clamp(min=0)
        invstd = (var + eps).rsqrt()
        w = weight.detach().double() if weight is not None else torch.ones(c, dtype=torch.float64)
        b = bias.detach().double() if bias is not None else torch.zeros(c, dtype=torch.float64)
        scale = w * invstd
        y = _affine(x, x, scale, torch.zeros(c), b - mean * scale)
        ctx.save_for_backward(x)
        ctx.mean, ctx.invstd, ctx.w = mean, invstd, w
        ctx.dtypes = tuple(p.dtype if p is not None else torch.float32 for p in (weight, bias))  # of the grads
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, gy: torch.Tensor, _gm: torch.Tensor, _gv: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        gy = gy.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        count = x.numel() // x.shape[1]
        mean, invstd, w = ctx.mean, ctx.invstd, ctx.w
        s1, s2 = _sums(gy, x, torch.zeros_like(mean), mean)  # sum(gy), sum(gy * (x - mean))
        a = w * invstd
        b = -w * invstd ** 3 * s2 / count
        gx = _affine(gy, x, a, b, -a * s1 / count - b * mean) if ctx.needs_input_grad[0] else None
        gw = (invstd * s2).to(ctx.dtypes[0]) if ctx.needs_input_grad[1] else None
        gb = s1.to(ctx.dtypes[1]) if ctx.needs_input_grad[2] else None
        return gx, gw, gb, None


class NativeBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode normalisation of bf16 channels-last CPU maps runs by the kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and native_applies(x)):
            return super().forward(x)
        y, mean, var = _BatchNorm.apply(x, self.weight, self.bias, self.eps)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                count = x.numel() // x.shape[1]
                unbiased = var * count / max(count - 1, 1)
                self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        return y


def use_native_norm(model: nn.Module) -> int:
    """Make the model's BatchNorm2d modules NativeBatchNorm, in place; returns how many (0 without the kernels)."""
    return kernels.swap_modules(model, nn.BatchNorm2d, NativeBatchNorm)
