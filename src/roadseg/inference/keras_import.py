"""Convert the notebook's Keras U-Net weights (HDF5, from ``model.save`` or ``save_weights``) into a
roadseg checkpoint that predicts the same masks. Reads the file with h5py; TensorFlow is not needed.

Keras' Conv2D kernels are (kh, kw, in, out) and Conv2DTranspose kernels (kh, kw, out, in); both become
PyTorch's layouts by one transpose, and roadseg's transposed convs already use Keras' "same" alignment.

Usage: ``ckpt = import_keras("unet.h5"); save_checkpoint(ckpt, "unet.pt")``
   or: ``roadseg import-keras unet.h5 unet.pt``
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import input_description, make_checkpoint
from ..classes import class_table
from ..errors import InputError
from ..nets import UNet


def _names(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_keras_layers(path: str | Path) -> list[tuple[str, str, list[np.ndarray]]]:
    """(layer name, class, weights) for every layer with weights, in the model's layer order."""
    import h5py
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise InputError(path, "file not found", "check the path") from None
    except OSError as e:
        raise InputError(path, f"is not an HDF5 file ({e})", "save the Keras model with model.save('x.h5')") from None
    with f:
        classes: dict[str, str] = {}
        if "model_config" in f.attrs:
            config = json.loads(f.attrs["model_config"])
            for layer in config.get("config", {}).get("layers", []):
                classes[layer["config"]["name"]] = layer["class_name"]
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise InputError(path, "has no Keras layer_names attribute",
                             "use a file written by Keras model.save(...h5) or save_weights(...h5)")
        layers = []
        for name in _names(root.attrs["layer_names"]):
            group = root[name]
            weight_names = _names(group.attrs.get("weight_names", []))
            if not weight_names:
                continue
            weights = [np.asarray(group[w]) for w in weight_names]
            kind = classes.get(name) or ("Conv2DTranspose" if "transpose" in name else
                                         "Conv2D" if "conv" in name else "unknown")
            layers.append((name, kind, weights))
    return layers


def import_keras(path: str | Path, size: tuple[int, int] = (96, 128)) -> dict[str, Any]:
    """A roadseg checkpoint dict with the notebook U-Net's weights from a Keras HDF5 file."""
    layers = read_keras_layers(path)
    convs = [(n, w) for n, k, w in layers if k == "Conv2D"]
    ups = [(n, w) for n, k, w in layers if k == "Conv2DTranspose"]
    other = [n for n, k, _ in layers if k not in ("Conv2D", "Conv2DTranspose")]
    if other or not convs or not ups:
        raise InputError(path, f"is not the notebook's U-Net (layers {other[:3] or 'missing convolutions'})",
                         "only the notebook's Conv2D/Conv2DTranspose U-Net can be imported")
    first, last = convs[0][1][0], convs[-1][1][0]
    in_channels, base = int(first.shape[2]), int(first.shape[3])
    num_classes = int(last.shape[3])
    model = UNet(in_channels, num_classes, base, depth=len(ups) + 1)
    targets_conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    targets_up = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    if len(targets_conv) != len(convs) or len(targets_up) != len(ups):
        raise InputError(path, f"has {len(convs)} Conv2D and {len(ups)} Conv2DTranspose layers; the notebook's "
                         f"U-Net of this depth has {len(targets_conv)} and {len(targets_up)}", "check the file")
    with torch.no_grad():
        for (name, (kernel, bias)), module in [*zip(convs, targets_conv), *zip(ups, targets_up)]:
            weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).float()
            if weight.shape != module.weight.shape or bias.shape != tuple(module.bias.shape):
                raise InputError(path, f"layer {name} has kernel {tuple(kernel.shape)}, expected the notebook's "
                                 f"{tuple(module.weight.shape)} (PyTorch order)", "check the file")
            module.weight.copy_(weight)
            module.bias.copy_(torch.from_numpy(bias).float())
    table = class_table("carla" if num_classes <= 23 else "generic", num_classes)
    return make_checkpoint(model, table, input_description(size, "nearest", model.size_multiple),
                           card={"source": f"imported from Keras HDF5 {Path(path).name}"})
