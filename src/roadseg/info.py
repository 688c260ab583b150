"""A model card for a checkpoint: size, classes, input and stored metrics.

Usage: ``print(describe("runs/demo/train/best.pt"))``
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .checkpoint import load_checkpoint, resolve_model_path
from .config import TrainConfig
from .nets.ensemble import network_label


def _settings(settings: dict[str, Any]) -> str:
    """', base filters 16, dropout 0.1'; an ensemble's: '; member 1: resunet, base filters 16, ...'."""
    own = {k: v for k, v in settings.items() if k not in ("in_channels", "num_classes", "members")}
    text = "".join(f", {k.replace('_', ' ')} {v}" for k, v in own.items())
    for i, m in enumerate(settings.get("members", [])):
        text += f"; member {i + 1}: {m['arch']}" + _settings(m["settings"])
    return text


def describe(name: str | Path) -> str:
    """Text description of a checkpoint (path or shipped name)."""
    path = resolve_model_path(name)
    ckpt = load_checkpoint(path)
    model, classes, inp = ckpt["model"], ckpt["classes"], ckpt["input"]
    training = ckpt.get("training", {})
    params = model.get("parameters")
    lines = [
        f"checkpoint   {path}",
        f"network      {network_label(model['arch'], model['settings'])}, "
        f"{f'{params:,}' if isinstance(params, int) else '?'} parameters" + _settings(model["settings"]),
        f"input        {inp['size'][0]}x{inp['size'][1]} {inp.get('channels', 'RGB')} in [0,1], "
        f"{inp.get('resize', 'bilinear')} resize",
        f"classes      {len(classes['names'])}: {', '.join(classes['names'])}",
        f"ignore id    {classes.get('ignore_index')}",
    ]
    data = ckpt.get("data", {})
    if data:
        lines.append(f"trained on   {data.get('root')} ({data.get('format')}), "
                     f"{data.get('train_images')} train / {data.get('val_images')} val images")
    if training:
        config = training.get("config") or {}
        done, planned = training.get("epoch"), config.get("epochs")
        lines.append(f"epochs       {done}" + (f" of {planned} planned" if planned is not None else "")
                     + f" (the weights after epoch {done}: a best.pt holds the epoch with the best val mIoU)")
        defaults = TrainConfig().to_dict()
        recipe = {k: v for k, v in config.items() if k in defaults and v != defaults[k] and k not in ("data", "out")}
        if recipe:
            lines.append("recipe       " + ", ".join(f"{k}={v}" for k, v in recipe.items()))
        metrics = training.get("metrics") or {}
        shown = {k: v for k, v in metrics.items() if k.startswith(("train_", "val_")) and v is not None}
        size = "x".join(map(str, inp["size"]))
        if shown:
            lines.append(f"metrics      at the end of training, at the network's {size}: "
                         + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
        if training.get("best_val_mean_iou") is not None:
            lines.append(f"best val mIoU {training['best_val_mean_iou']:.4f} (during training, at {size}; scores "
                         "at full resolution or after export adjustments are the card's)")
    for key, value in (ckpt.get("card") or {}).items():  # the model card: measured after training
        lines.append(f"{key:<12} {value}")
    return "\n".join(lines)
