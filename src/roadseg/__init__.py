"""roadseg: per-pixel road-scene segmentation with the notebook's U-Net, in PyTorch.

Usage: ``from roadseg import UNet, Predictor``; the command line is ``roadseg --help``.
"""
from .model import UNet
from .predict import Predictor

__all__ = ["UNet", "Predictor", "__version__"]
__version__ = "0.1.0"
