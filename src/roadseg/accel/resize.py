"""Bilinear 2x upsampling of bf16 channels-last CPU maps by the native kernel (csrc/resize.cpp), for
bf16 training on the CPU, where PyTorch's backward of it is slow: `NativeResize` is a
`roadseg.nets.resize.Resize` that takes the kernel when it applies (PyTorch's F.interpolate otherwise:
other sizes, dtypes, devices, or no kernels); `use_native_resize(model)` swaps it in.

Usage: ``use_native_resize(model)  # in place; no parameters, so state_dict and ONNX export unchanged``
"""
from __future__ import annotations

import torch
from torch import nn

from ..nets.resize import Resize
from . import kernels


def native_applies(x: torch.Tensor, size: tuple[int, int]) -> bool:
    """An (N,C,H,W) bf16 channels-last CPU map upsampled to exactly (2H, 2W), the kernels available."""
    return (x.device.type == "cpu" and x.dtype == torch.bfloat16 and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and tuple(size) == (2 * x.shape[2], 2 * x.shape[3]) and kernels.library() is not None)


class _Upsample2x(torch.autograd.Function):
    """Forward: the kernel's upsampling (channels-last bf16 out). Backward: the kernel's gradient of
    any-layout output gradients (made channels-last bf16 first, one copy)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        ctx.shape = x.shape
        y = torch.empty((n, c, 2 * h, 2 * w), dtype=x.dtype, memory_format=torch.channels_last)
        kernels.library().upsample2x_bf16(x.data_ptr(), n, h, w, c, y.data_ptr(), torch.get_num_threads())
        return y

    @staticmethod
    def backward(ctx, gy: torch.Tensor) -> torch.Tensor:
        n, c, h, w = ctx.shape
        gy = gy.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        gx = torch.empty((n, c, h, w), dtype=torch.bfloat16, memory_format=torch.channels_last)
        kernels.library().upsample2x_backward_bf16(gy.data_ptr(), n, h, w, c, gx.data_ptr(), torch.get_num_threads())
        return gx


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) by the kernel (see
    `native_applies`), with its gradient."""
    return _Upsample2x.apply(x)


class NativeResize(Resize):
    """Resize that runs exact 2x upsampling of bf16 channels-last CPU maps by the kernel."""

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if native_applies(x, size):
            return upsample2x(x)
        return super().forward(x, size)


def use_native_resize(model: nn.Module) -> int:
    """Make the model's Resize modules NativeResize, in place; returns how many (0 without the kernels)."""
    return kernels.swap_modules(model, Resize, NativeResize)
