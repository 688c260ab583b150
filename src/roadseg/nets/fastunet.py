"""A real-time U-Net for CPUs: the encoder reaches 1/2 resolution in its first conv (a stride-2 stem)
and halves again in the first conv of every block, so no layer runs at the input resolution; the
deepest block adds global context (its mean over the frame, projected and added back); the decoder
upsamples bilinearly and fuses each skip with one 3x3 conv; the classifier runs at 1/2 resolution and
its logits are upsampled to the input size. Only dense 3x3 and 1x1 convs, which INT8 runtimes (OpenVINO,
onnxruntime) and bf16 CPU training run at full speed: measured against a depth-wise design (DABNet,
`roadseg.nets.dabnet`), see benchmarks/RESULTS.md. 2.5 M parameters at width 16; inputs must be
multiples of 32.

Usage: ``net = roadseg.nets.create("fastunet", num_classes=11)``
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .base import SegNet
from .registry import register
from .resize import Resize


class ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class Down(nn.Sequential):
    """A stride-2 3x3 conv, then `convs` more 3x3 convs at the lower resolution."""

    def __init__(self, c_in: int, c_out: int, convs: int) -> None:
        super().__init__(ConvBNReLU(c_in, c_out, stride=2), *[ConvBNReLU(c_out, c_out) for _ in range(convs)])


class GlobalContext(nn.Module):
    """Adds the projected mean of the feature map to every position."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, bn, act = self.project
        y = conv(x.mean((2, 3), keepdim=True))
        if self.training and y.shape[0] == 1:  # one value per channel has no batch statistics: use the running ones
            y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        else:
            y = bn(y)
        return x + act(y)


class Up(nn.Module):
    """Bilinear upsampling to the skip's size, concatenation, one 3x3 conv."""

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.up = Resize()
        self.fuse = ConvBNReLU(c_in + c_skip, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.up(x, skip.shape[-2:]), skip], 1))


def through_u(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The U of `net` (an `encoder` list, `context`, `dropout` and a `decoder` list of skip-fusing
    blocks): each encoder output is kept as a skip, the deepest goes through the context, and the
    decoder fuses the skips back in reverse order."""
    skips = []
    for block in net.encoder:
        x = block(x)
        skips.append(x)
    x = net.dropout(net.context(skips.pop()))
    for up in net.decoder:
        x = up(x, skips.pop())
    return x


def decoder(up: Callable[[int, int, int], nn.Module], widths: list[int]) -> nn.ModuleList:
    """The decoder list `through_u` walks: `up(c_in, c_skip, c_out)` from the deepest width back to the first."""
    return nn.ModuleList(up(widths[i + 1], widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))


class FiveLevelU(SegNet):
    """Base of the U networks with five levels down to 1/32 (fastunet, resunet), walked by `through_u`."""

    @property
    def size_multiple(self) -> int:
        """Five halvings: height and width must be multiples of 32."""
        return 32


@register("fastunet")
class FastUNet(FiveLevelU):
    """Widths width * (1, 2, 4, 8, 16) at 1/2 .. 1/32 resolution."""

    def __init__(self, in_channels: int = 3, num_classes: int = 23, width: int = 16, dropout: float = 0.1) -> None:
        super().__init__()
        self.settings = dict(in_channels=in_channels, num_classes=num_classes, width=width, dropout=dropout)
        w = [width * 2**i for i in range(5)]
        self.encoder = nn.ModuleList([Down(in_channels, w[0], 1), Down(w[0], w[1], 1), Down(w[1], w[2], 2),
                                      Down(w[2], w[3], 2), Down(w[3], w[4], 2)])
        self.context = GlobalContext(w[4])
        self.dropout = nn.Dropout2d(dropout)
        self.decoder = decoder(Up, w)
        self.classifier = nn.Conv2d(w[0], num_classes, 1)
        self.up = Resize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(*x.shape[-2:])
        return self.up(self.classifier(through_u(self, x)), x.shape[-2:])
