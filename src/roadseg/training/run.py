"""`train()`: one training run from settings to run folder. Reads and checks everything first (the
dataset, every setting, that the run folder is none of the inputs and not in use), then prepares
the run folder (never replacing one without `overwrite`), writes config.yaml and trains; with
`resume`, continues RUN/last.pt exactly, refusing changed settings other than RESUMABLE.

Usage::

    run_dir = train(TrainConfig(data="data", out="runs/x", epochs=5))   # or train(cfg, resume=True)
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping

from ..checkpoint import load_checkpoint
from ..config import PATH_SETTINGS, TrainConfig
from ..device import pick_device
from ..errors import InputError
from ..safety import LOCK_NAME, RunLock, is_empty, refuse_deleting_here, refuse_overlap, resolved
from .build import prepare_data
from .distill import refuse_int8_off_cpu
from .loop import Trainer
from .signals import Interrupted
from .state import restore

# Settings a resumed run may change (each change is kept in the checkpoint's training.resumes);
# any other change would make the continued run a different run, and is refused.
RESUMABLE = ("epochs", "patience", "progress", "tensorboard", "mlflow", "device", "workers", "cache_gb")


def resume_changes(before: TrainConfig, after: TrainConfig) -> dict[str, list[Any]]:
    """The settings `after` changes from the run's own `before`: {key: [old, new]}; a change outside
    RESUMABLE is an InputError naming the setting. Paths are compared as the files they name; `out` is
    where the run is now (a run folder may be moved), not a setting to compare."""
    changes = {}
    old, new = before.to_dict(), after.to_dict()
    for key in TrainConfig.keys():
        a, b = old[key], new[key]
        if key == "out":
            continue
        if key in PATH_SETTINGS:
            a, b = (str(resolved(v)) if v else v for v in (a, b))
        if a != b:
            if key not in RESUMABLE:
                raise InputError(None, f"--resume cannot change {key} (the run has {old[key]!r}, given {new[key]!r})",
                                 f"leave {key} as it was; a resumed run may change only {', '.join(RESUMABLE)}")
            changes[key] = [old[key], new[key]]
    return changes


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    """Refuse to overwrite an existing run unless asked to; empty it (but for the lock) if asked."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file, not a run folder", "choose another --out")
    if out.exists() and not is_empty(out):
        if not overwrite:
            raise InputError(out, "run folder already exists and is not empty",
                             "pass --overwrite to replace it, --resume to continue it, or choose another --out")
        for child in out.iterdir():
            if child.name != LOCK_NAME:
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
          inputs: Mapping[str, str | Path | None] | None = None) -> Path:
    """Train the network `cfg` describes; returns the run folder. With `resume`, continue from
    RUN/last.pt. `inputs` names further files the run reads (e.g. {'config': path}): the run folder
    may not be, contain or lie inside any of them, nor the dataset."""
    cfg = cfg.anchored()  # config.yaml and the checkpoints name the same files from any working directory
    out = Path(cfg.out)
    refuse_overlap(out, {"dataset": cfg.data, **(inputs or {})})
    if overwrite and not resume:
        refuse_deleting_here(out)
    ckpt, changes = None, {}
    if resume:
        if not (out / "last.pt").exists():
            raise InputError(out / "last.pt", "not found, nothing to resume", "start a new run without --resume")
        ckpt = load_checkpoint(out / "last.pt")
        before = TrainConfig.from_dict(ckpt["training"]["config"], str(out / "last.pt"))
        changes = resume_changes(before, cfg)
    if cfg.distill_int8:  # known before the data is loaded (otherwise the first check is the trainer's)
        refuse_int8_off_cpu(pick_device(cfg.device), cfg.distill)
    data = prepare_data(cfg)
    trainer = Trainer(cfg, data, out, resume=resume)  # checks every setting before anything is written
    main = trainer.world.main
    lock = RunLock(out) if main else None
    status = "FAILED"  # what MLflow (with --mlflow) records unless the run ends otherwise
    try:
        if lock is not None:
            lock.__enter__()
            if resume:
                for stale in out.glob(".*.tmp"):  # left by a run killed while writing; rank 0 alone cleans
                    stale.unlink(missing_ok=True)
            else:
                prepare_run_dir(out, overwrite)
        trainer.world.barrier()
        if ckpt is not None:
            restore(trainer, ckpt)
            if changes:
                trainer.resumes.append({"epoch": trainer.epoch, "changed": changes})
        if main:
            cfg.save(out / "config.yaml")
            if cfg.train_on == "train+val" and len(data.val):
                print(f"training on train+val ({len(data.train)} frames): the {len(data.val)} val frames are "
                      "trained on too, so val scores only monitor the run", flush=True)
        trainer.fit()
        status = "FINISHED"
    except Interrupted:
        status = "KILLED"
        raise
    finally:
        trainer.close(status)
        if lock is not None:
            lock.__exit__(None, None, None)
    return out
