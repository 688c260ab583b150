"""Training: `train()` (run.py) builds a run from its settings (build.py: data, network, optimizer,
schedule, loss, augmenter), loops over epochs (loop.py), saves and restores its state through the
checkpoint format (state.py), writes metrics, curves and TensorBoard scalars (outputs.py) and stops
cleanly on signals (signals.py); losses, optimisers and schedules, and torchrun/DDP support
(distributed.py) live beside them.

Usage::

    from roadseg.config import TrainConfig
    from roadseg.training import train
    run_dir = train(TrainConfig(data="data", out="runs/x", epochs=5))
"""
from .build import PreparedData, build_parts, prepare_data
from .loop import Trainer
from .run import train

__all__ = ["PreparedData", "Trainer", "build_parts", "prepare_data", "train"]
