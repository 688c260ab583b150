"""The U-Net's stride-2 3x3 transposed convolution (Keras "same" alignment: output 2i + k, cropped to
twice the input) as ordinary convolutions over its output phases.

Output row 2i draws on kernel rows 0 (input row i) and 2 (row i - 1), output row 2i + 1 on kernel row
1 alone; the same holds for columns. So the four phases (even/even, even/odd, odd/even, odd/odd) are
convolutions with 2x2, 2x1, 1x2 and 1x1 kernels, interleaved. oneDNN's
transposed convolution is slow in bf16 on the CPU (measured in benchmarks/RESULTS.md), its ordinary
convolutions are not: `transposed_up` takes the phase path where that pays and PyTorch's own
operator elsewhere (GPUs, fp32 and ONNX export, so exported graphs keep one ConvTranspose).

Usage: ``up = transposed_up(module.up, x, skip.shape[-2:])``
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


# The 3x3 taps (3 * row + column) that the four phases' 2x2, 2x1, 1x2 and 1x1 kernels read, in order.
PHASE_TAPS = (8, 6, 2, 0, 7, 1, 5, 3, 4)
PHASE_SHAPES = ((2, 2), (2, 1), (1, 2), (1, 1))


def phase_weights(wt: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(C,K,3,3) stride-2 transposed-conv weight -> the conv weights (K,C,kh,kw), channels-last, of its
    four output phases (even/even 2x2, even/odd 2x1, odd/even 1x2, odd/odd 1x1): output 2i+a draws on
    taps a, a+2. The nine taps are a permutation of the weight's, taken by one product with a
    permutation matrix (exact), so the gradient is one product too (indexing by tap lists costs an
    index_put per phase in every training step)."""
    c, k = wt.shape[:2]
    perm = torch.eye(9, dtype=wt.dtype, device=wt.device)[list(PHASE_TAPS)]
    taps = perm @ wt.reshape(c, k, 9).permute(1, 2, 0)  # (K, 9, C)
    out, start = [], 0
    for kh, kw in PHASE_SHAPES:
        part = taps[:, start:start + kh * kw].reshape(k, kh, kw, c).permute(0, 3, 1, 2)
        out.append(part.contiguous(memory_format=torch.channels_last))
        start += kh * kw
    return tuple(out)


class _Interleave(torch.autograd.Function):
    """The four (N,K,H,W) phase maps (even/even, even/odd, odd/even, odd/odd) -> the (N,K,2H,2W)
    channels-last map, in one strided copy each way (each pixel's K channels move together)."""

    @staticmethod
    def forward(ctx, *phases: torch.Tensor) -> torch.Tensor:
        n, k, h, w = phases[0].shape
        out = torch.empty((n, 2 * h, 2 * w, k), dtype=phases[0].dtype, device=phases[0].device)
        grid = out.view(n, h, 2, w, 2, k)
        for i, y in enumerate(phases):
            grid[:, :, i // 2, :, i % 2].copy_(y.permute(0, 2, 3, 1))
        return out.permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n, k, h2, w2 = grad.shape
        grid = grad.permute(0, 2, 3, 1).reshape(n, h2 // 2, 2, w2 // 2, 2, k)
        return tuple(grid[:, :, i // 2, :, i % 2].permute(0, 3, 1, 2) for i in range(4))


def phase_maps(x: torch.Tensor, phases: tuple[torch.Tensor, ...], bias: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """The four (N,K,H,W) phase maps of the transposed conv of input x (N,C,H,W), given its
    `phase_weights`: even/even, even/odd, odd/even, odd/odd (channel stride 1 for a channels-last x)."""
    h, w = x.shape[2:]
    ee, eo, oe, oo = phases
    return (F.conv2d(F.pad(x, (1, 0, 1, 0)), ee, bias),   # rows i-1, i and columns j-1, j
            F.conv2d(x, eo, bias, padding=(1, 0))[:, :, :h],  # rows i-1, i; column j
            F.conv2d(x, oe, bias, padding=(0, 1))[:, :, :, :w],  # row i; columns j-1, j
            F.conv2d(x, oo, bias))


def upsample_phases(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The transposed conv of `weight` (C,K,3,3), stride 2, output cropped to (2H, 2W): its four phases
    as convolutions of their own kernel sizes (9 multiplications per input pixel and channel pair, as
    the transposed conv; one 2x2 convolution with zero taps for the smaller phases does 16 and was
    measured 1.3x slower in a training step), interleaved by `_Interleave`."""
    return _Interleave.apply(*phase_maps(x, phase_weights(weight), bias))


def phases_pay(x: torch.Tensor) -> bool:
    """Whether the phase path runs: bf16 on the CPU (the tensor's dtype or autocast's), outside export."""
    if x.device.type != "cpu" or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return False
    return x.dtype == torch.bfloat16 or (torch.is_autocast_enabled("cpu")
                                         and torch.get_autocast_dtype("cpu") == torch.bfloat16)


def transposed_up(conv: nn.ConvTranspose2d, x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """`conv(x)` cropped to `size`: the U-Net's upsampling, by whichever path pays (see module doc)."""
    if phases_pay(x) and tuple(size) == (2 * x.shape[2], 2 * x.shape[3]):
        dtype = torch.bfloat16
        bias = None if conv.bias is None else conv.bias.to(dtype)
        return upsample_phases(x.to(dtype), conv.weight.to(dtype), bias)
    return conv(x)[:, :, : size[0], : size[1]]
