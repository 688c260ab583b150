"""Ensembles: several networks run as one, their class probabilities averaged.

Networks trained apart (other seeds, other recipes) make different mistakes; the mean of their
probabilities is a better mask than any one of them (CamVid val: two `resunet` runs +1.3 to 1.7 points of
mIoU over the better one, benchmarks/RESULTS.md, fifteenth session) at the cost of one forward pass each.
The output is the log of the mean probability, so argmax gives the averaged prediction and a softmax
the averaged probabilities; every engine, export and command treats it as any other network.
`average="logits"` averages the logits instead: 0.3 points less on that pair, but 1.3-1.5x the INT8
frames/s (the softmax and log over every pixel cost about as much as a quarter of a member there).

Build one from trained checkpoints with ``roadseg export --model A --model B ...`` (each member keeps its
own weights, logit adjustment and batch norms); ``--arch ensemble`` trains the members jointly, on the
loss of their averaged probabilities.

Usage::

    net = create("ensemble", num_classes=11, members=[{"arch": "resunet", "settings": {"base_filters": 16}},
                                                      {"arch": "fastunet", "settings": {}}])
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .base import SegNet
from .registry import create, register

DEFAULT_MEMBERS = ({"arch": "resunet", "settings": {"base_filters": 16}},) * 2
TINY = 1e-30  # the least mean probability: its log stays finite


def member_spec(member: dict[str, Any], in_channels: int, num_classes: int) -> dict[str, Any]:
    """A member's {"arch", "settings"} with the ensemble's input channels and classes."""
    settings = {**dict(member.get("settings", {})), "in_channels": in_channels, "num_classes": num_classes}
    return {"arch": str(member["arch"]), "settings": settings}


@register("ensemble")
class Ensemble(SegNet):
    """Members given as [{"arch": name, "settings": {...}}, ...]; the log of their mean softmax, or with
    average='logits' the mean of their logits (no softmax and log per pixel: faster, a little less accurate)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 23,
                 members: list[dict[str, Any]] | tuple[dict[str, Any], ...] = DEFAULT_MEMBERS,
                 average: str = "probabilities") -> None:
        super().__init__()
        if any(not isinstance(m, dict) or "arch" not in m for m in members):
            raise ValueError('each member is {"arch": name, "settings": {...}}')
        if not members or any(m.get("arch") == "ensemble" for m in members):
            raise ValueError("an ensemble needs one or more members, none of them an ensemble")
        if average not in ("probabilities", "logits"):
            raise ValueError(f"average is 'probabilities' or 'logits', not {average!r}")
        specs = [member_spec(m, in_channels, num_classes) for m in members]
        self.settings = dict(in_channels=in_channels, num_classes=num_classes, members=specs, average=average)
        self.members = nn.ModuleList([create(s["arch"], **s["settings"]) for s in specs])

    @property
    def size_multiple(self) -> int:
        return math.lcm(*(m.size_multiple for m in self.members))

    def encoder_parameters(self) -> list[nn.Parameter]:
        """--freeze-encoder holds each member's encoder; their decoders and classifiers still train."""
        return [p for m in self.members for p in m.encoder_parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(*x.shape[-2:])
        if self.settings["average"] == "logits":
            return torch.stack([m(x) for m in self.members]).mean(0)
        probs = torch.stack([m(x).softmax(1) for m in self.members]).mean(0)
        return probs.clamp_min(TINY).log()


def network_label(arch: str, settings: dict[str, Any]) -> str:
    """How tables name a checkpoint's network: its arch, or for an ensemble its members ('2 x resunet')."""
    if arch != "ensemble":
        return arch
    archs = [m["arch"] for m in settings.get("members", [])]
    return f"{len(archs)} x {archs[0]}" if len(set(archs)) == 1 else " + ".join(archs)
