"""`Resize`, the networks' bilinear resizing (F.interpolate, align_corners=False) as a module without
parameters, so that `roadseg.accel.resize.use_native_resize` can swap in a native kernel for bf16 CPU
training without the networks importing it; state_dict and ONNX graphs are those of F.interpolate.

Usage: ``self.up = Resize()`` in __init__, then ``x = self.up(x, skip.shape[-2:])``
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Resize(nn.Module):
    """Bilinear resizing of an (N,C,H,W) map to `size` (H, W)."""

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
