"""oneDNN convolution + ReLU in one primitive, for CPU inference of any network.

`fuse_conv_relu(model, dtype)` returns a copy of an eval-mode network in which every nn.Conv2d inside
an nn.Sequential runs as one oneDNN convolution (`torch.ops.mkldnn._convolution_pointwise`, the op
PyTorch's own compiler emits for CPU conv fusions) with the ReLU that follows it, if one does, applied
in the convolution's output pass instead of a second pass over the feature map. The weight is stored
in `dtype` (bf16 or fp32) and reordered once per input shape into oneDNN's blocked layout. The same
numbers as the unfused modules (the same primitive; ReLU is exact). Inference only: no gradients.
Where the fused op cannot be trusted here (no oneDNN, not x86-64, bf16 that oneDNN cannot run on this
CPU, or a one-layer check against F.conv2d that fails on first use), the model comes back unchanged.

Usage::

    fast = fuse_conv_relu(fold_batch_norms(net), torch.bfloat16)   # what TorchEngine runs on the CPU
"""
from __future__ import annotations

import copy
import functools
import platform

import torch
from torch import nn
from torch.nn import functional as F

# oneDNN's fused convolution and weight packing, as this module and the Winograd network call them
ONEDNN_OPS = torch.backends.mkldnn.is_available() and all(
    hasattr(torch.ops.mkldnn, op) for op in ("_convolution_pointwise", "_reorder_convolution_weight"))
AVAILABLE = platform.machine().lower() in ("x86_64", "amd64") and ONEDNN_OPS
_PACKED_SHAPES = 2  # weights kept packed for this many input shapes (full batches and a last, smaller one)


def packed_weight(cache: dict[tuple[int, ...], torch.Tensor], weight: torch.Tensor, padding: list[int],
                  stride: list[int], dilation: list[int], groups: int, shape: tuple[int, ...]) -> torch.Tensor:
    """`weight` reordered into oneDNN's blocked layout for inputs of `shape`, kept in `cache` for at most
    _PACKED_SHAPES shapes (each is a copy of the weight)."""
    if shape not in cache:
        if len(cache) >= _PACKED_SHAPES:
            cache.clear()
        cache[shape] = torch.ops.mkldnn._reorder_convolution_weight(weight, padding, stride, dilation, groups,
                                                                     list(shape))
    return cache[shape]


class FusedConv2d(nn.Module):
    """An nn.Conv2d (zero padding, numeric padding) and optionally the ReLU after it, as one oneDNN
    primitive on the CPU; inputs are cast to the weight's dtype, outputs come back in it."""

    def __init__(self, conv: nn.Conv2d, relu: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("weight", conv.weight.detach().to(dtype).contiguous())
        bias = conv.bias.detach().float() if conv.bias is not None else None
        self.register_buffer("bias", bias)
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.attr = "relu" if relu else "none"
        self._packed: dict[tuple[int, ...], torch.Tensor] = {}

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, {self.weight.dtype}, post-op={self.attr}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.weight.dtype)
        weight = packed_weight(self._packed, self.weight, self.padding, self.stride, self.dilation, self.groups,
                               tuple(x.shape))
        return torch.ops.mkldnn._convolution_pointwise(x, weight, self.bias, self.padding, self.stride,
                                                       self.dilation, self.groups, self.attr, [], "")


def _fusable(conv: nn.Module) -> bool:
    return type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


@functools.cache
def works(dtype: torch.dtype) -> bool:
    """Whether the fused op runs here in `dtype` and gives F.conv2d + ReLU's numbers on a small layer."""
    if not AVAILABLE:
        return False
    if dtype == torch.bfloat16 and not getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)():
        return False
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.1)
        conv.bias.copy_(torch.randn(16, generator=g) * 0.1)
        x = torch.rand(2, 8, 6, 10, generator=g).to(dtype)
        try:
            got = FusedConv2d(conv, True, dtype)(x).float()
        except Exception:  # an op this build or CPU cannot run: stay unfused
            return False
        expected = torch.relu(F.conv2d(x.float(), conv.weight.to(dtype).float(), conv.bias, padding=1))
    tolerance = 1e-4 if dtype == torch.float32 else 3e-2
    return got.shape == expected.shape and bool((got - expected).abs().max() <= tolerance)


def fuse_conv_relu(model: nn.Module, dtype: torch.dtype = torch.float32, inplace: bool = False) -> nn.Module:
    """A copy of eval-mode `model` (`model` itself with `inplace`, for a caller that owns it already) with
    each nn.Sequential's Conv2d (and a ReLU after it, Identity in between allowed: a folded batch norm) as
    a FusedConv2d in `dtype`; without `inplace`, `model` is left as it was. Where the fused op cannot run
    here (`works`), `model` itself, unchanged."""
    if not works(dtype):
        return model
    fused = (model if inplace else copy.deepcopy(model)).eval()
    for seq in [m for m in fused.modules() if isinstance(m, nn.Sequential)]:
        mods = seq._modules
        names = list(mods)
        for i, name in enumerate(names):
            if not _fusable(mods[name]):
                continue
            j = i + 1
            while j < len(names) and type(mods[names[j]]) is nn.Identity:
                j += 1
            relu = j < len(names) and type(mods[names[j]]) is nn.ReLU
            mods[name] = FusedConv2d(mods[name], relu, dtype)
            if relu:
                mods[names[j]] = nn.Identity()
    return fused
