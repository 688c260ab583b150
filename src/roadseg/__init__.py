"""roadseg: per-pixel road-scene segmentation with the notebook's U-Net, in PyTorch.

Usage::

    import roadseg
    predictor = roadseg.load("camvid")          # a shipped model name, or a checkpoint path
    mask = predictor.predict(frame)             # HxWx3 uint8 (or float in [0,1]) -> HxW class ids

The command line is ``roadseg --help``.
"""
from __future__ import annotations

from pathlib import Path

from .model import UNet
from .predict import Predictor

__all__ = ["UNet", "Predictor", "load", "__version__"]
__version__ = "0.1.0"


def load(model: str | Path, device: str = "auto") -> Predictor:
    """A Predictor for a checkpoint path or a shipped model name (e.g. "camvid")."""
    return Predictor.from_checkpoint(model, device)
