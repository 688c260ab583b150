"""The U-Net of the "Image Segmentation with U-Net" notebook, in PyTorch.

With its defaults this is the notebook's network exactly (8,640,471 parameters at 3 input
channels and 23 classes): encoder blocks of two 3x3 ReLU convs (he-normal init) with 32..512
filters, dropout 0.3 on the last two, 2x2 max-pool between them; a decoder of 3x3 stride-2
transposed convs (Keras "same" alignment) concatenated with the skip, two 3x3 convs; a 3x3 conv
of 32 and a 1x1 conv to class logits.

Usage: ``logits = UNet(num_classes=23)(images)  # (N,3,H,W) in [0,1] -> (N,23,H,W)``
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import SegNet
from .dropout import Dropout
from .registry import register
from .upsample import transposed_up


def _he_normal_(weight: torch.Tensor) -> None:
    """Keras' he_normal: a normal truncated at 2 sigma with variance 2 / fan_in."""
    fan_in = weight.shape[1] * weight[0, 0].numel()
    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)


def _glorot_uniform_(weight: torch.Tensor, fan_in: int, fan_out: int) -> None:
    """Keras' glorot_uniform (the default of Conv2D and Conv2DTranspose)."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(weight, -limit, limit)


class ConvBlock(nn.Sequential):
    """Two 3x3 convs with ReLU (optionally batch-normalised), then optional dropout."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float = 0.0, batch_norm: bool = False):
        layers: list[nn.Module] = []
        for c_in in (in_ch, out_ch):
            conv = nn.Conv2d(c_in, out_ch, 3, padding=1, bias=not batch_norm)
            _he_normal_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            layers.append(conv)
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.ReLU(inplace=True))
        if dropout > 0:
            layers.append(Dropout(dropout))
        super().__init__(*layers)


class UpBlock(nn.Module):
    """3x3 stride-2 transposed conv, concatenation with the skip, then a ConvBlock."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, batch_norm: bool = False):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2)
        # PyTorch stores (in, out, k, k): fan_in of the transposed conv is out*k*k, as in Keras.
        _glorot_uniform_(self.up.weight, out_ch * 9, in_ch * 9)
        nn.init.zeros_(self.up.bias)
        self.conv = ConvBlock(out_ch + skip_ch, out_ch, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # Keras' padding="same" places output j = 2i + k; padding 0 then cropping gives exactly that
        # (in bf16 on the CPU computed as four phase convolutions: roadseg.nets.upsample)
        up = transposed_up(self.up, x, skip.shape[2:])
        return self.conv(torch.cat([up, skip], dim=1))


@register("unet")
class UNet(SegNet):
    """The notebook's U-Net; `base_filters`, `depth`, `dropout` and `batch_norm` widen or vary it."""

    def __init__(self, in_channels: int = 3, num_classes: int = 23, base_filters: int = 32,
                 depth: int = 5, dropout: float = 0.3, batch_norm: bool = False) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError("depth must be at least 2")
        self.settings = dict(in_channels=in_channels, num_classes=num_classes,
                             base_filters=base_filters, depth=depth, dropout=dropout,
                             batch_norm=batch_norm)
        widths = [base_filters * 2**i for i in range(depth)]
        self.encoder = nn.ModuleList()
        c_in = in_channels
        for i, w in enumerate(widths):
            # The notebook puts dropout on the two deepest blocks.
            self.encoder.append(ConvBlock(c_in, w, dropout if i >= depth - 2 else 0.0, batch_norm))
            c_in = w
        self.decoder = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i], widths[i], batch_norm) for i in reversed(range(depth - 1))
        )
        conv = nn.Conv2d(widths[0], widths[0], 3, padding=1, bias=not batch_norm)
        _he_normal_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
        head = [conv] + ([nn.BatchNorm2d(widths[0])] if batch_norm else []) + [nn.ReLU(inplace=True)]
        self.head_conv = nn.Sequential(*head)
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)
        _glorot_uniform_(self.classifier.weight, widths[0], num_classes)
        nn.init.zeros_(self.classifier.bias)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (one halving per pooling)."""
        return 2 ** (self.settings["depth"] - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(*x.shape[-2:])
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x)
            if i < len(self.encoder) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for up, skip in zip(self.decoder, reversed(skips)):
            x = up(x, skip)
        return self.classifier(self.head_conv(x))

