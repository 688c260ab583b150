"""A real-time network in the design of DABNet (Li et al., "DABNet: Depth-wise Asymmetric Bottleneck
with Point-wise Aggregation Decoder for Real-time Semantic Segmentation", BMVC 2019), written here in
plain PyTorch: an initial block of three 3x3 convs to 1/2 resolution, then depth-wise asymmetric
bottleneck (DAB) modules at 1/4 and 1/8 resolution (a 3x3 conv halving the channels, two depth-wise
factorised 3x1/1x3 branches, one of them dilated, summed, a 1x1 conv back, a residual), with the
downsampled input image concatenated at each stage, a 1x1 classifier at 1/8 and bilinear upsampling
to the input size. 0.75 M parameters at 11 classes; inputs must be multiples of 8.

Usage: ``net = roadseg.nets.create("dabnet", num_classes=11)``
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import SegNet
from .registry import register


class ConvBNPReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int | tuple[int, int], stride: int = 1,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, act: bool = True) -> None:
        k2 = (k, k) if isinstance(k, int) else k
        d2 = (dilation, dilation) if isinstance(dilation, int) else dilation
        pad = ((k2[0] - 1) // 2 * d2[0], (k2[1] - 1) // 2 * d2[1])
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k2, stride, pad, d2, groups, bias=False),
                                   nn.BatchNorm2d(c_out)]
        if act:
            layers.append(nn.PReLU(c_out))
        super().__init__(*layers)


class BNPReLU(nn.Sequential):
    def __init__(self, c: int) -> None:
        super().__init__(nn.BatchNorm2d(c), nn.PReLU(c))


class CatBNPReLU(nn.Module):
    """Concatenate feature maps, batch-normalise, PReLU. The batch norm is one per part (the same
    per-channel function as one over the concatenation), so each folds into the conv before it
    where there is one: OpenVINO's INT8 compiler crashes on a batch norm after a concatenation."""

    def __init__(self, *channels: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in channels)
        self.act = nn.PReLU(sum(channels))

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        return self.act(torch.cat([bn(p) for bn, p in zip(self.norms, parts)], 1))


class DABModule(nn.Module):
    """Depth-wise asymmetric bottleneck: c -> c/2 (3x3) -> [3x1,1x3 depth-wise] + [dilated 3x1,1x3
    depth-wise] -> 1x1 -> c, plus the input."""

    def __init__(self, c: int, dilation: int) -> None:
        super().__init__()
        h = c // 2
        self.pre = BNPReLU(c)
        self.reduce = ConvBNPReLU(c, h, 3)
        self.local = nn.Sequential(ConvBNPReLU(h, h, (3, 1), groups=h), ConvBNPReLU(h, h, (1, 3), groups=h))
        self.context = nn.Sequential(ConvBNPReLU(h, h, (3, 1), dilation=(dilation, 1), groups=h),
                                     ConvBNPReLU(h, h, (1, 3), dilation=(1, dilation), groups=h))
        self.post = BNPReLU(h)
        self.expand = nn.Conv2d(h, c, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(self.pre(x))
        y = self.post(self.local(y) + self.context(y))
        return self.expand(y) + x


class Downsample(nn.Module):
    """3x3 stride-2 conv, concatenated with a 2x2 max-pool of the input when the channels grow."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.pool = c_in < c_out
        c_conv = c_out - c_in if self.pool else c_out
        self.conv = nn.Conv2d(c_in, c_conv, 3, 2, 1, bias=False)
        self.act = CatBNPReLU(c_conv, c_in) if self.pool else CatBNPReLU(c_conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.act(y, F.max_pool2d(x, 2)) if self.pool else self.act(y)


@register("dabnet")
class DABNet(SegNet):
    """DABNet; `width` scales every stage's channels (32, 64, 128 at width 1.0's 32)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 19, width: int = 32,
                 blocks1: int = 3, blocks2: int = 6) -> None:
        super().__init__()
        self.settings = dict(in_channels=in_channels, num_classes=num_classes, width=width,
                             blocks1=blocks1, blocks2=blocks2)
        w = width
        self.init = nn.Sequential(ConvBNPReLU(in_channels, w, 3, 2), ConvBNPReLU(w, w, 3), ConvBNPReLU(w, w, 3))
        self.bn1 = CatBNPReLU(w, in_channels)
        self.down1 = Downsample(w + in_channels, 2 * w)
        self.stage1 = nn.Sequential(*[DABModule(2 * w, 2) for _ in range(blocks1)])
        self.bn2 = CatBNPReLU(2 * w, 2 * w, in_channels)
        self.down2 = Downsample(4 * w + in_channels, 4 * w)
        dilations = [4, 4, 8, 8, 16, 16][:blocks2] + [16] * max(0, blocks2 - 6)
        self.stage2 = nn.Sequential(*[DABModule(4 * w, d) for d in dilations])
        self.bn3 = CatBNPReLU(4 * w, 4 * w, in_channels)
        self.classifier = nn.Conv2d(8 * w + in_channels, num_classes, 1)

    @property
    def size_multiple(self) -> int:
        return 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(*x.shape[-2:])
        size = x.shape[-2:]
        x2 = F.avg_pool2d(x, 2)
        x4 = F.avg_pool2d(x2, 2)
        x8 = F.avg_pool2d(x4, 2)
        d1 = self.down1(self.bn1(self.init(x), x2))
        d2 = self.down2(self.bn2(self.stage1(d1), d1, x4))
        y = self.bn3(self.stage2(d2), d2, x8)
        return F.interpolate(self.classifier(y), size=size, mode="bilinear", align_corners=False)
