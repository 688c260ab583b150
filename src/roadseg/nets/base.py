"""What every network roadseg trains is: a `SegNet` (an nn.Module from (N,C,H,W) images in [0,1] to
(N,classes,H,W) logits at the input's size) that records its constructor settings and says which
input sizes it takes. The size rule lives here, once, for networks, datasets and inference files;
so does `fold_batch_norms`, the inference copy of any network with each batch norm folded into the
convolution before it.

Usage::

    check_size((96, 128), 16)          # InputError unless both are multiples of 16
    net.check_size(96, 128)            # the same, with the network's own size_multiple
"""
from __future__ import annotations

import copy
from typing import Any

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import InputError


def check_size(size: tuple[int, int] | list[int], multiple: int = 16) -> None:
    """Refuse an input size whose height or width is not a multiple of `multiple`."""
    h, w = int(size[0]), int(size[1])
    if h % multiple or w % multiple:
        example = f"{max(multiple, h // multiple * multiple)}x{max(multiple, w // multiple * multiple)}"
        raise InputError(None, f"size {h}x{w} is not divisible by {multiple}",
                         f"choose height and width that are multiples of {multiple}, e.g. {example}")


class SegNet(nn.Module):
    """Base of every registered network. Subclasses set `self.settings` (the keyword arguments that
    rebuild them, JSON-able, including `in_channels` and `num_classes`) and `size_multiple`, and name
    their last layer `classifier` (its rows are the classes: --init copies or re-initialises them)."""

    arch: str = ""                      # the registry name, set by `register`
    settings: dict[str, Any]

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        raise NotImplementedError

    @property
    def in_channels(self) -> int:
        return int(self.settings["in_channels"])

    @property
    def num_classes(self) -> int:
        return int(self.settings["num_classes"])

    def encoder_parameters(self) -> list[nn.Parameter]:
        """What --freeze-encoder holds: the `encoder` module's parameters where the network has one,
        else every parameter outside its `decoder` and `classifier`."""
        encoder = getattr(self, "encoder", None)
        if isinstance(encoder, nn.Module):
            return list(encoder.parameters())
        return [p for n, p in self.named_parameters() if not n.startswith(("decoder.", "classifier."))]

    def check_size(self, h: int, w: int) -> None:
        """Raise InputError unless an h x w input fits the network."""
        check_size((h, w), self.size_multiple)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` in which every BatchNorm2d that directly follows a Conv2d in an
    nn.Sequential is folded into that convolution (and replaced by Identity): the same function in
    one pass over the feature map instead of two. `model` itself is left as it was."""
    folded = copy.deepcopy(model).eval()
    for seq in (m for m in folded.modules() if isinstance(m, nn.Sequential)):
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
    return folded
