"""roadseg: per-pixel road-scene segmentation, in PyTorch.

Usage::

    import roadseg
    predictor = roadseg.load("camvid")          # a shipped model name, a checkpoint path or a run folder
    mask = predictor.predict(frame)             # HxWx3 uint8 (or float in [0,1]) -> HxW class ids
    roadseg.nets.names()                        # the registered networks ('unet', ...)
    run = roadseg.train("data", "runs/mine", init="camvid-unet", epochs=20, batch_norm=True, base_filters=16)

Importing roadseg or loading a model changes nothing in the caller's process: no matplotlib backend
is chosen and the allocator is left alone. `roadseg.keep_freed_memory()` opts in to the glibc
setting the command line uses for speed on the CPU (see `roadseg.device`).

The command line is ``roadseg --help``. Where things live: data/ (files to tensors), nets/ (the
network registry), training/, evaluation/, inference/ (predictor, engines, export), accel/ (Winograd
CPU kernels), weights/ (shipped models); checkpoint.py owns the checkpoint format.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .inference.predictor import Predictor

__all__ = ["Predictor", "UNet", "keep_freed_memory", "load", "nets", "train", "__version__"]
__version__ = "0.1.0"
# Imported on first use (PEP 562), so that `import roadseg` and the command line start without torch.
_LAZY = {"Predictor": ("inference.predictor", "Predictor"), "UNet": ("nets", "UNet"),
         "keep_freed_memory": ("device", "keep_freed_memory"), "nets": ("nets", None)}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'roadseg' has no attribute '{name}'")
    module, attr = _LAZY[name]
    loaded = importlib.import_module(f".{module}", __name__)
    return loaded if attr is None else getattr(loaded, attr)


def load(model: str | Path, device: str = "auto", backend: str = "torch", winograd: bool = True,
         precision: str = "auto", tta: bool | Sequence[float] = False) -> "Predictor":
    """A Predictor for a checkpoint path, run folder or shipped model name (e.g. "camvid"); `precision`
    auto, fp32 or bf16; `tta` True for flip test-time augmentation, or scales for multi-scale
    (e.g. (0.8, 1.2); see `roadseg predict --help`)."""
    from .inference.predictor import Predictor
    return Predictor.from_checkpoint(model, device, backend=backend, winograd=winograd, tta=tta, precision=precision)


def train(data: str | Path, out: str | Path = "runs/train", *, init: str | None = None, resume: bool = False,
          overwrite: bool = False, **settings: Any) -> Path:
    """Train as `roadseg train` does and return the run folder; `settings` are the config keys
    (`roadseg train --help`, long flag names with '_'), e.g.::

        run = roadseg.train("data", "runs/mine", init="camvid-unet", epochs=20,
                            batch_norm=True, base_filters=16, classes="carla08")
        predictor = roadseg.load(run)
    """
    from .checkpoint import resolve_model_path
    from .config import TrainConfig
    from .training import train as run
    cfg = TrainConfig.from_dict({**settings, "data": str(data), "out": str(out), "init": init}, "roadseg.train")
    return run(cfg, resume=resume, overwrite=overwrite,
               inputs={"model given to --init": resolve_model_path(init, quiet=True) if init else None})
