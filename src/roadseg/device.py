"""Choosing the compute device and mixed precision.

Usage: ``dev = pick_device("auto"); ctx = autocast(dev, enabled=True)``
"""
from __future__ import annotations

import contextlib

import torch

from .errors import InputError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(None, f"device '{name}' asked for but no CUDA GPU is available", "use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(None, f"unknown device '{name}'", "use auto, cpu or cuda") from None


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype for `device`: bfloat16 where supported, else float16; None on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """An autocast context on CUDA when enabled, a no-op elsewhere."""
    dtype = amp_dtype(device)
    if not enabled or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
