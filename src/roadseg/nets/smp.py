"""segmentation_models_pytorch's architectures as roadseg networks (the optional extra
``roadseg[smp]``): `smp-unet`, `smp-fpn`, `smp-deeplabv3plus` and `smp-unetplusplus`, with any smp or
timm encoder (`encoder`) started from ImageNet (`encoder_weights="imagenet"`, downloaded through the
libraries' own caches), from nothing (`"none"`) or from a saved encoder state dict (a path).

The names are always registered, so a checkpoint of one, loaded without the extra, says which extra
it needs. The smp model's segmentation head is moved out as `classifier` (roadseg's name for the
class rows that --init copies). Settings record `encoder_weights="none"`: a rebuilt network gets its
weights from the checkpoint, never from a download.

Usage: ``net = roadseg.nets.create("smp-unet", num_classes=11, encoder="resnet18", encoder_weights="none")``
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InputError, require
from .base import SegNet
from .registry import register


def load_encoder_weights(encoder: nn.Module, path: Path) -> None:
    """Copy a saved encoder state dict (torch.save of `encoder.state_dict()`) into `encoder`."""
    if not path.is_file():
        raise InputError(path, "encoder weights not found", "give a saved encoder state dict, imagenet or none")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same one-line error
        raise InputError(path, f"is not a saved state dict ({type(e).__name__})",
                         "save one with torch.save(model.encoder.state_dict(), PATH)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    try:
        encoder.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0][:160]
        raise InputError(path, f"does not fit the encoder ({first})",
                         "use weights saved from the same --encoder") from None


def running_stats_for_single_values(model: nn.Module) -> None:
    """Batch norms that meet one value per channel in training (DeepLabV3+'s image pooling on a batch of
    one frame, as the last batch of an epoch can be) use their running statistics for that call instead
    of failing, as roadseg's own networks do."""
    def before(module: nn.Module, args: tuple) -> None:
        x = args[0]
        if module.training and x.numel() == x.shape[1]:
            module.training = False
            module._roadseg_single = True

    def after(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if getattr(module, "_roadseg_single", False):
            module.training, module._roadseg_single = True, False

    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(before)
            module.register_forward_hook(after)


class SmpNet(SegNet):
    """One smp architecture (`smp_class`) behind roadseg's network interface."""

    smp_class = ""

    def __init__(self, in_channels: int = 3, num_classes: int = 23, encoder: str = "resnet34",
                 encoder_weights: str = "none") -> None:
        super().__init__()
        smp = require("segmentation_models_pytorch", "smp", f"network '{self.arch}'")
        self.settings = dict(in_channels=in_channels, num_classes=num_classes, encoder=encoder, encoder_weights="none")
        self.pretrained = encoder_weights
        weights = encoder_weights if encoder_weights == "imagenet" else None
        try:
            model = getattr(smp, self.smp_class)(encoder_name=encoder, encoder_weights=weights,
                                                 in_channels=in_channels, classes=num_classes)
        except (KeyError, ValueError) as e:
            raise InputError(None, f"smp cannot build {self.arch} with encoder '{encoder}' ({e})",
                             "choose an encoder from segmentation_models_pytorch.encoders.get_encoder_names()") from None
        except Exception as e:  # noqa: BLE001 - a failed download of the ImageNet weights
            if weights is None:
                raise
            raise InputError(None, f"the ImageNet weights of encoder '{encoder}' could not be fetched ({type(e).__name__})",
                             "connect to the network once, or pass --encoder-weights PATH (a saved encoder "
                             "state dict) or none") from None
        if encoder_weights not in ("imagenet", "none", None, ""):
            load_encoder_weights(model.encoder, Path(encoder_weights))
        self.classifier = model.segmentation_head
        model.segmentation_head = nn.Identity()
        running_stats_for_single_values(model)
        self.model = model

    @property
    def encoder(self) -> nn.Module:
        """The smp encoder (what --freeze-encoder holds)."""
        return self.model.encoder

    @property
    def size_multiple(self) -> int:
        return 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(*x.shape[-2:])
        return self.classifier(self.model(x))


def _register(name: str, smp_class: str) -> Any:
    cls = type(f"Smp{smp_class}", (SmpNet,), {"smp_class": smp_class, "__doc__": f"smp.{smp_class} as '{name}'."})
    return register(name)(cls)


for _name, _class in (("smp-unet", "Unet"), ("smp-fpn", "FPN"), ("smp-deeplabv3plus", "DeepLabV3Plus"),
                      ("smp-unetplusplus", "UnetPlusPlus")):
    _register(_name, _class)
