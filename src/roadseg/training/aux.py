"""Deep supervision (`roadseg train --aux-weight W`): training-only classifier heads on a network's
coarser decoder stages (every block of its `decoder` list but the last: unet, fastunet, resunet), each
a 3x3 conv, batch norm, ReLU and a 1x1 conv to the classes. Their logits are upsampled to the labels
and scored by the run's own loss; a training step adds W times the mean of those scores to its loss.
Forward hooks read the stages, so the network, its state_dict and everything that runs it after
training are unchanged; the heads live only in the run's last.pt, for --resume.

Usage::

    heads = AuxHeads.attach(model, num_classes)     # InputError for a network without decoder stages
    logits = net(images)                            # the hooks keep the stages' outputs
    loss = loss_fn(logits, masks) + w * heads.loss(loss_fn, masks)
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError


def supervised_stages(model: nn.Module) -> list[nn.Module]:
    """The decoder blocks deep supervision reads: all of a `decoder` ModuleList but its last block."""
    decoder = getattr(model, "decoder", None)
    return list(decoder)[:-1] if isinstance(decoder, nn.ModuleList) else []


class AuxHeads(nn.Module):
    """One head per supervised stage; `loss()` scores (and forgets) what the hooks kept in the last
    training forward pass."""

    def __init__(self, widths: list[int], num_classes: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                          nn.Conv2d(c, num_classes, 1)) for c in widths)
        self.kept: list[torch.Tensor] = []

    @classmethod
    def attach(cls, model: nn.Module, num_classes: int) -> "AuxHeads":
        """Heads for `model`'s supervised stages (their widths found by one small forward pass), hooked in."""
        stages = supervised_stages(model)
        if not stages:
            raise InputError(None, f"network '{getattr(model, 'arch', type(model).__name__)}' has no decoder stages "
                             "for deep supervision (--aux-weight)", "use unet, fastunet or resunet, or leave it out")
        widths: list[int] = []
        probes = [s.register_forward_hook(lambda m, i, out: widths.append(out.shape[1])) for s in stages]
        was_training, side = model.training, 2 * getattr(model, "size_multiple", 32)
        param = next(model.parameters())
        try:
            with torch.no_grad():
                model.eval()(torch.zeros(1, model.in_channels, side, side, device=param.device, dtype=param.dtype))
        finally:
            model.train(was_training)
            for probe in probes:
                probe.remove()
        heads = cls(widths, num_classes).to(param.device)
        kept = heads.kept  # a list, not the module: the hooks survive a deep copy of the model (EMA) unchanged

        def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if module.training:
                kept.append(output)

        model.register_forward_pre_hook(lambda m, i: kept.clear() if m.training else None)
        for stage in stages:
            stage.register_forward_hook(keep)
        return heads

    def loss(self, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
        """The mean of `loss_fn` over the heads' logits (upsampled to `masks`) of the last training pass."""
        if len(self.kept) != len(self.heads):
            raise RuntimeError(f"deep supervision kept {len(self.kept)} stages of {len(self.heads)}: "
                               "call it once after each training forward pass")
        terms = [loss_fn(F.interpolate(head(x), size=masks.shape[-2:], mode="bilinear", align_corners=False), masks)
                 for head, x in zip(self.heads, self.kept)]
        self.kept.clear()
        return torch.stack(terms).mean()


class WithHeads(nn.Module):
    """The network and its heads as one module for DistributedDataParallel (which then averages the heads'
    gradients too); its forward is the network's."""

    def __init__(self, model: nn.Module, heads: AuxHeads) -> None:
        super().__init__()
        self.model, self.heads = model, heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
