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
        raise InputError(path, f"refused: it holds objects a safe load does not allow ({_first_line(e)})",
                         "only load checkpoints written by roadseg") from None
    except Exception as e:  # any other failure of a corrupt file: zip, pickle or tensor errors
        raise InputError(path, f"is not a readable checkpoint ({type(e).__name__}: {_first_line(e)})",
                         "it may be truncated; use last.pt or best.pt from the run folder") from None
    if not _well_formed(ckpt):
        raise InputError(path, "is not a roadseg checkpoint", "train one with `roadseg train`")
    return ckpt


def _well_formed(ckpt: Any) -> bool:
    """The parts every use of a checkpoint relies on are there and of the right type."""
    try:
        return (isinstance(ckpt["model"]["settings"], dict) and isinstance(ckpt["model"]["state_dict"], dict)
                and isinstance(ckpt["classes"]["names"], list) and isinstance(ckpt["classes"]["colors"], list)
                and len(ckpt["input"]["size"]) == 2)
    except (KeyError, TypeError, IndexError):
        return False


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:120] if lines else "no detail"


def build_model(ckpt: dict[str, Any]) -> UNet:
    """The model a checkpoint describes, with its weights loaded (float32, eval mode)."""
    try:
        model = UNet(**ckpt["model"]["settings"])
        state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"]["state_dict"].items()}
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError, AttributeError) as e:
        raise InputError(None, f"checkpoint weights do not fit its model settings ({_first_line(e)})",
                         "the file is damaged or was not written by roadseg") from None
    return model.eval()


def class_table_of(ckpt: dict[str, Any]) -> ClassTable:
    return ClassTable.from_dict(ckpt["classes"])
