"""`train()`: one training run from settings to run folder. Reads and checks everything first, then
prepares the run folder (never replacing one without `overwrite`), writes config.yaml and trains;
with `resume`, continues RUN/last.pt exactly.

Usage::

    run_dir = train(TrainConfig(data="data", out="runs/x", epochs=5))   # or train(cfg, resume=True)
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..checkpoint import load_checkpoint
from ..config import TrainConfig
from ..errors import InputError
from .build import prepare_data
from .loop import Trainer
from .state import restore


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to overwrite an existing run unless asked to; create the folder."""
    if resume:
        if not (out / "last.pt").exists():
            raise InputError(out / "last.pt", "not found, nothing to resume", "start a new run without --resume")
        for stale in out.glob(".*.tmp"):  # left by a run killed while writing
            stale.unlink()
        return
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(out, "run folder already exists and is not empty",
                             "pass --overwrite to replace it, --resume to continue it, or choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> Path:
    """Train the network `cfg` describes; returns the run folder. With `resume`, continue from RUN/last.pt."""
    out = Path(cfg.out)
    ckpt = None
    if resume:
        prepare_run_dir(out, resume=True, overwrite=False)
        ckpt = load_checkpoint(out / "last.pt")
    data = prepare_data(cfg)
    trainer = Trainer(cfg, data, out)  # checks every setting before anything is written
    main = trainer.world.main
    try:
        if not resume and main:
            prepare_run_dir(out, resume=False, overwrite=overwrite)
        trainer.world.barrier()
        if ckpt is not None:
            restore(trainer, ckpt)
        if main:
            cfg.save(out / "config.yaml")
        trainer.fit()
    finally:
        trainer.close()
    return out
