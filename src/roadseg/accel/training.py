"""Winograd F(4x4,3x3) convolutions for fp32 training on the CPU: `WinogradConv2d` computes the
forward pass, the input gradient and the weight gradient in the Winograd domain; `use_for_training`
(called by the trainer on the CPU unless `--no-winograd`) swaps the wide 3x3 convs of a network for
it in place. bf16 autocast steps use PyTorch's conv.

Usage: ``use_for_training(model)  # before the optimizer step loop; parameters and state_dict unchanged``
"""
from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import note_once
from . import kernels
from .winograd import fits, unavailable_reason, winograd_weight, winograd_weight_grad


class _WinogradConv(torch.autograd.Function):
    """conv2d(x, weight, bias, padding=1) for training: forward, input and weight gradients all in
    Winograd F(4x4,3x3). The input gradient of a 'same' 3x3 conv is the conv of the output gradient
    with the kernel flipped and transposed; the weight gradient is G^T (sum over tiles of
    (A gY A^T) x (B^T d B)) G, the tiles' products one batched matrix product per position."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        n, _, h, w = x.shape
        m = F.conv2d(kernels.winograd_input([kernels.source(x)], n, h, w), winograd_weight(weight), groups=36)
        return kernels.winograd_output(m, bias.contiguous() if bias is not None else None, False, n, h, w)

    @staticmethod
    def backward(ctx, gy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        n, c, h, w = x.shape
        k = weight.shape[0]
        gy = gy.contiguous(memory_format=torch.channels_last)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            flipped = winograd_weight(weight.flip(2, 3).transpose(0, 1))
            m = F.conv2d(kernels.winograd_input([kernels.source(gy)], n, h, w), flipped, groups=36)
            gx = kernels.winograd_output(m, None, False, n, h, w)
        if ctx.needs_input_grad[1]:
            v = kernels.winograd_input([kernels.source(x)], n, h, w)  # recomputed: cheaper than keeping it
            gm = kernels.winograd_output_grad(gy)
            t = v.shape[2]
            gu = torch.bmm(gm.as_strided((36, k, t), (k, 1, 36 * k)), v.as_strided((36, t, c), (c, 36 * c, 1)))
            gw = winograd_weight_grad(gu)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gy.sum((0, 2, 3))
        return gx, gw, gb


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


# In training the weights change every step, so each step pays for transforming them (forward,
# flipped, gradient) and for oneDNN's reorders: a cost per channel pair, as is the saving per tile.
# Break-even is a tile count; measured per conv (fwd + bwd, 2-core Zen 5): 32 tiles 0.58x, 96 ~1.0x,
# 128 0.94x, 384 1.3-1.65x, 1536 1.5-1.9x.
MIN_TRAINING_TILES = 256


class WinogradConv2d(nn.Conv2d):
    """A 3x3, padding-1 Conv2d that runs as Winograd (_WinogradConv) for fp32 CPU tensors outside
    autocast with at least MIN_TRAINING_TILES 4x4 output tiles, and as nn.Conv2d otherwise. Same
    parameters and state_dict as nn.Conv2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.dtype == torch.float32 and not _cpu_autocast() \
                and kernels.tiles(x.shape[0], *x.shape[2:]) >= MIN_TRAINING_TILES:
            return _WinogradConv.apply(x, self.weight, self.bias)
        return super().forward(x)


@functools.cache
def training_self_check() -> str:
    """'' if the Winograd training conv's output, input gradient and weight gradient (the gradient
    kernel) equal conv2d's on a small case here, else what went wrong."""
    if unavailable_reason():
        return unavailable_reason()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x = torch.rand(2, 64, 8, 12, requires_grad=True)
        w = (torch.randn(64, 64, 3, 3) * 0.05).requires_grad_()
        b = torch.randn(64, requires_grad=True)
        gy = torch.randn(2, 64, 8, 12)
    try:
        expected = torch.autograd.grad(F.conv2d(x, w, b, padding=1), (x, w, b), gy)
        out = _WinogradConv.apply(x, w, b)
        got = torch.autograd.grad(out, (x, w, b), gy)
        ref = F.conv2d(x, w, b, padding=1)
    except Exception as e:
        return f"training self-check failed: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:120]}"
    for name, a, e in (("output", out, ref), *zip(("input grad", "weight grad", "bias grad"), got, expected)):
        err = (a - e).abs().max().item()
        if not err <= 1e-3 * max(1.0, e.abs().max().item()):
            return f"training self-check failed: {name} differs by {err:.2g}"
    return ""


def use_for_training(model: nn.Module) -> int:
    """Make the model's 3x3 convs whose channels `fit` WinogradConv2d, in place (their parameters, optimizer state and state_dict keys are unchanged).
    Returns how many; 0 where the kernels are unavailable.

    Usage: ``use_for_training(model)`` before wrapping it in DDP; not with torch.compile."""
    reason = training_self_check()
    if reason:
        note_once(f"roadseg: Winograd training convs not used ({reason}); running PyTorch's convolutions")
        return 0
    count = 0
    for m in model.modules():
        if type(m) is nn.Conv2d and m.kernel_size == (3, 3) and m.padding == (1, 1) and m.stride == (1, 1) \
                and m.dilation == (1, 1) and m.groups == 1 and m.padding_mode == "zeros" \
                and fits((m.in_channels,), m.out_channels):
            m.__class__ = WinogradConv2d
            count += 1
    return count
