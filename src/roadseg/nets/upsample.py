"""The U-Net's stride-2 3x3 transposed convolution (Keras "same" alignment: output 2i + k, cropped to
twice the input) as ordinary convolutions over its output phases.

Output row 2i draws on kernel rows 0 (input row i) and 2 (row i - 1), output row 2i + 1 on kernel row
1 alone; the same holds for columns. So the four phases (even/even, even/odd, odd/even, odd/odd) are
convolutions with 2x2, 2x1, 1x2 and 1x1 kernels: one 2x2 convolution with four output channels per
channel (zero taps where a phase's kernel is smaller), interleaved. oneDNN's
transposed convolution is slow in bf16 on the CPU (measured in benchmarks/RESULTS.md), its ordinary
convolutions are not: `transposed_up` takes the phase path where that pays and PyTorch's own
operator elsewhere (GPUs, fp32 and ONNX export, so exported graphs keep one ConvTranspose).

Usage: ``up = transposed_up(module.up, x, skip.shape[-2:])``
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def phase_weights(wt: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(C,K,3,3) stride-2 transposed-conv weight -> the conv weights of its four output phases
    (even/even 2x2, even/odd 2x1, odd/even 1x2, odd/odd 1x1): output 2i+a draws on taps a, a+2."""
    flip = [2, 0]
    ee = wt[:, :, flip][:, :, :, flip]
    eo = wt[:, :, flip, 1:2]
    oe = wt[:, :, 1:2][:, :, :, flip]
    oo = wt[:, :, 1:2, 1:2]
    return tuple(p.permute(1, 0, 2, 3).contiguous() for p in (ee, eo, oe, oo))


def _phase_taps(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(16, 9) 0/1 matrix: row 8a + 4b + 2i + j (phase (a, b), 2x2 tap (i, j)) picks the 3x3 tap it
    holds, or none. Along one axis, phase 0's taps over input rows (i - 1, i) are kernel taps (2, 0),
    phase 1's are (none, 1)."""
    axis = torch.zeros(2, 2, 3, dtype=dtype, device=device)
    axis[0, 0, 2] = axis[0, 1, 0] = axis[1, 1, 1] = 1
    return torch.einsum("aiu,bjv->abijuv", axis, axis).reshape(16, 9)


def subpixel_weight(wt: torch.Tensor) -> torch.Tensor:
    """(C,K,3,3) transposed-conv weight -> (4K,C,2,2), channels-last (as oneDNN takes it): one 2x2
    convolution over the input padded by a row above and a column to the left whose output channel
    (2a + b)K + k is phase (a, b) of channel k (the smaller phase kernels padded with zero taps). One
    product with a 0/1 matrix (exact: each entry is one tap or zero), so its gradient is one product
    too, where indexing by tap lists costs an index_put per phase."""
    c, k = wt.shape[:2]
    taps = _phase_taps(wt.dtype, wt.device) @ wt.reshape(c * k, 9).T  # (16, C*K): (a, b, i, j) x (c, k)
    return taps.view(2, 2, 2, 2, c, k).permute(0, 1, 5, 2, 3, 4).reshape(4 * k, 2, 2, c).permute(0, 3, 1, 2)


def interleave(y: torch.Tensor) -> torch.Tensor:
    """(N,4K,H,W) whose channel (2a + b)K + k is phase (a, b) of channel k -> (N,K,2H,2W): pixel_shuffle
    with the phase as the outer channel index, so that for channels-last tensors each pixel moves as
    K contiguous values, forward and backward (PyTorch's pixel_unshuffle, its backward, was measured at
    2% of a bf16 U-Net training step)."""
    n, c4, h, w = y.shape
    k = c4 // 4
    phases = y.permute(0, 2, 3, 1).reshape(n, h, w, 2, 2, k).permute(0, 1, 3, 2, 4, 5)  # (n, h, a, w, b, k)
    return phases.reshape(n, 2 * h, 2 * w, k).permute(0, 3, 1, 2)


def upsample_phases(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The transposed conv of `weight` (C,K,3,3), stride 2, output cropped to (2H, 2W): its four phases
    as one 2x2 convolution (measured faster than four separate ones, which need a copy to interleave),
    interleaved by `interleave`. Channels-last output for a channels-last input."""
    bias = None if bias is None else bias.repeat(4)
    return interleave(F.conv2d(F.pad(x, (1, 0, 1, 0)), subpixel_weight(weight), bias))


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
