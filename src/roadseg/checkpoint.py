"""Checkpoints: one self-contained file with weights, model settings, classes, input size and
training metrics, written atomically and read with ``torch.load(weights_only=True)`` so a
checkpoint cannot run code.

Usage::

    save_checkpoint(state, "runs/x/best.pt")
    ckpt = load_checkpoint("runs/x/best.pt")     # or a shipped name such as "camvid"
    model = build_model(ckpt)
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from .classes import ClassTable
from .errors import InputError
from .imageio import atomic_write
from .model import UNet

FORMAT_VERSION = 1
MODELS_DIR = Path(__file__).resolve().parent / "models"


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` (tensors and plain Python values only) to `path` atomically."""
    state = {"format_version": FORMAT_VERSION, **state}
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def resolve_model_path(name: str | Path) -> Path:
    """A checkpoint path, or the name of a model shipped with roadseg (e.g. 'camvid')."""
    path = Path(name)
    if path.exists():
        return path
    shipped = MODELS_DIR / f"{name}.pt"
    if not path.suffix and shipped.exists():
        return shipped
    available = sorted(p.stem for p in MODELS_DIR.glob("*.pt")) if MODELS_DIR.is_dir() else []
    hint = f"shipped models: {', '.join(available)}" if available else "pass the path of a .pt checkpoint"
    raise InputError(path, "checkpoint not found", hint)


def load_checkpoint(name: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely (no code execution); refuses anything that is not a roadseg checkpoint."""
    path = resolve_model_path(name)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsafe content"
        raise InputError(path, f"refused: it holds objects a safe load does not allow ({first[:120]})",
                         "only load checkpoints written by roadseg") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise InputError(path, f"is not a readable checkpoint ({str(e).splitlines()[0][:120]})",
                         "it may be truncated; use last.pt or best.pt from the run folder") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "classes" not in ckpt:
        raise InputError(path, "is not a roadseg checkpoint", "train one with `roadseg train`")
    return ckpt


def build_model(ckpt: dict[str, Any]) -> UNet:
    """The model a checkpoint describes, with its weights loaded (float32, eval mode)."""
    model = UNet(**ckpt["model"]["settings"])
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"]["state_dict"].items()}
    model.load_state_dict(state)
    return model.eval()


def class_table_of(ckpt: dict[str, Any]) -> ClassTable:
    return ClassTable.from_dict(ckpt["classes"])
