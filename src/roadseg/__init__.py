"""roadseg: per-pixel road-scene segmentation, in PyTorch.

Usage::

    import roadseg
    predictor = roadseg.load("camvid")          # a shipped model name, a checkpoint path or a run folder
    mask = predictor.predict(frame)             # HxWx3 uint8 (or float in [0,1]) -> HxW class ids
    roadseg.nets.names()                        # the registered networks ('unet', ...)

Importing roadseg or loading a model changes nothing in the caller's process: no matplotlib backend
is chosen and the allocator is left alone. `roadseg.keep_freed_memory()` opts in to the glibc
setting the command line uses for speed on the CPU (see `roadseg.device`).

The command line is ``roadseg --help``. Where things live: data/ (files to tensors), nets/ (the
network registry), training/, evaluation/, inference/ (predictor, engines, export), accel/ (Winograd
CPU kernels), weights/ (shipped models); checkpoint.py owns the checkpoint format.
"""
from __future__ import annotations

from pathlib import Path

from . import nets
from .device import keep_freed_memory
from .inference.predictor import Predictor
from .nets import UNet

__all__ = ["Predictor", "UNet", "keep_freed_memory", "load", "nets", "__version__"]
__version__ = "0.1.0"


def load(model: str | Path, device: str = "auto", backend: str = "torch", winograd: bool = True) -> Predictor:
    """A Predictor for a checkpoint path, run folder or shipped model name (e.g. "camvid")."""
    return Predictor.from_checkpoint(model, device, backend=backend, winograd=winograd)
