"""The accuracy network: a residual U-Net with atrous context and a full-resolution head.

Encoder: a stride-2 stem, then stages that halve the resolution in their first residual block (two
3x3 convs beside an identity or 1x1 shortcut) down to 1/32, widths base_filters * (1, 2, 4, 8, 16).
Context at 1/32: an atrous pyramid (1x1, 3x3 with dilations 2 and 4, and the frame mean, in the
spirit of DeepLabV3's ASPP) projected back to the deepest width. Decoder: bilinear upsampling, the
skip concatenated, one 3x3 conv and a residual block per level up to 1/2; then a full-resolution
head fuses a light conv of the input itself, so thin objects (poles, signs: one or two pixels wide
at 1/2) are classified at the pixel scale. Dense 3x3 and 1x1 convs only, which INT8 runtimes and bf16
CPU training run at full speed. Inputs must be multiples of 32.

`resunet-sp` adds strip pooling (Hou et al., "Strip Pooling", CVPR 2020) after the decoder's 1/8, 1/4 and
1/2 levels: every position is gated by the means of its row and of its column, the long-range context
of long thin objects (a pole spans its column). Measured on CamVid's held-out recipe it does the opposite:
Pole 0.118 IoU against resunet's 0.237 (benchmarks/RESULTS.md, twelfth session).

Usage: ``net = roadseg.nets.create("resunet", num_classes=11, base_filters=24)``
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .fastunet import ConvBNReLU, FiveLevelU, GlobalContext, decoder, through_u
from .registry import register
from .resize import Resize


class Residual(nn.Module):
    """Two 3x3 convs (the first with `stride`) added to a shortcut (1x1 conv where the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBNReLU(c_in, c_out, stride=stride),
                                  nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity() if c_in == c_out and stride == 1 else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


def stage(c_in: int, c_out: int, blocks: int) -> nn.Sequential:
    """`blocks` residual blocks, the first halving the resolution."""
    return nn.Sequential(Residual(c_in, c_out, 2), *[Residual(c_out, c_out) for _ in range(blocks - 1)])


class AtrousContext(nn.Module):
    """1x1, two dilated 3x3 branches and the projected frame mean, concatenated and projected to `c`."""

    def __init__(self, c: int, branch: int, dilations: tuple[int, ...] = (2, 4)) -> None:
        super().__init__()
        self.branches = nn.ModuleList([ConvBNReLU(c, branch, 1)] + [nn.Sequential(
            nn.Conv2d(c, branch, 3, 1, d, dilation=d, bias=False), nn.BatchNorm2d(branch), nn.ReLU(inplace=True))
            for d in dilations])
        self.project = ConvBNReLU(branch * len(self.branches), c, 1)
        self.mean = GlobalContext(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean(self.project(torch.cat([b(x) for b in self.branches], 1)))


class StripPooling(nn.Module):
    """Gates x by a map built from its row means (H x 1, a 3x1 conv) and column means (1 x W, a 1x3 conv)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        mid = max(c // 4, 4)
        self.reduce = ConvBNReLU(c, mid, 1)
        self.rows = nn.Sequential(nn.Conv2d(mid, mid, (3, 1), 1, (1, 0), bias=False), nn.BatchNorm2d(mid))
        self.cols = nn.Sequential(nn.Conv2d(mid, mid, (1, 3), 1, (0, 1), bias=False), nn.BatchNorm2d(mid))
        self.gate = nn.Conv2d(mid, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        context = F.relu(self.rows(y.mean(3, keepdim=True)) + self.cols(y.mean(2, keepdim=True)))
        return x * torch.sigmoid(self.gate(context))


class UpResidual(nn.Module):
    """Bilinear upsampling to the skip's size, concatenation, a 3x3 conv and a residual block."""

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.up = Resize()
        self.fuse = ConvBNReLU(c_in + c_skip, c_out)
        self.refine = Residual(c_out, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.refine(self.fuse(torch.cat([self.up(x, skip.shape[-2:]), skip], 1)))


class UpStrip(UpResidual):
    """UpResidual followed by strip pooling."""

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__(c_in, c_skip, c_out)
        self.strip = StripPooling(c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.strip(super().forward(x, skip))


@register("resunet")
class ResUNet(FiveLevelU):
    """Widths base_filters * (1, 2, 4, 8, 16) at 1/2 .. 1/32; residual blocks (1, 1, 2, 2, 1) per level."""

    strip_levels = 0  # the finest decoder levels followed by strip pooling

    def __init__(self, in_channels: int = 3, num_classes: int = 23, base_filters: int = 24,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.settings = dict(in_channels=in_channels, num_classes=num_classes, base_filters=base_filters,
                             dropout=dropout)
        w = [base_filters * 2**i for i in range(5)]
        self.encoder = nn.ModuleList([
            nn.Sequential(ConvBNReLU(in_channels, w[0], stride=2), Residual(w[0], w[0])),
            stage(w[0], w[1], 1), stage(w[1], w[2], 2), stage(w[2], w[3], 2), stage(w[3], w[4], 1)])
        self.context = AtrousContext(w[4], w[2])
        self.dropout = nn.Dropout2d(dropout)
        self.decoder = decoder(lambda c_in, c_skip, c_out: (UpStrip if c_out < w[self.strip_levels] else UpResidual)(
            c_in, c_skip, c_out), w)
        self.full = ConvBNReLU(in_channels, w[0] // 2)
        self.head = ConvBNReLU(w[0] + w[0] // 2, w[0])
        self.classifier = nn.Conv2d(w[0], num_classes, 1)
        self.up = Resize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(*x.shape[-2:])
        u = self.up(through_u(self, x), x.shape[-2:])
        return self.classifier(self.head(torch.cat([u, self.full(x)], 1)))


@register("resunet-sp")
class StripResUNet(ResUNet):
    """resunet with strip pooling after the decoder levels at 1/8, 1/4 and 1/2."""

    strip_levels = 3
