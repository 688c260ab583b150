"""A training run's checkpoint: what the trainer hands to the checkpoint format (`make_checkpoint`)
and how it restores itself from `last.pt` for an exact resume (weights, optimizer, schedule,
scaler, random state, epoch, history; deep supervision's heads).

Usage::

    save_checkpoint(run_checkpoint(trainer), run / "last.pt")
    restore(trainer, load_checkpoint(run / "last.pt"))
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from ..checkpoint import cpu_state, input_description, make_checkpoint

if TYPE_CHECKING:
    from .loop import Trainer


def run_checkpoint(trainer: "Trainer", with_optimizer: bool = True) -> dict[str, Any]:
    """The checkpoint of the trainer's current state; without the optimizer part for best.pt."""
    cfg, data, parts = trainer.cfg, trainer.data, trainer.parts
    training = {"epoch": trainer.epoch, "history": list(trainer.history), "config": cfg.to_dict(),
                "class_weights": None if parts.class_weights is None else parts.class_weights.tolist(),
                "best_val_mean_iou": trainer.best_miou if trainer.best_miou > -math.inf else None,
                "metrics": trainer.history[-1] if trainer.history else {}, "resumes": list(trainer.resumes),
                "init": trainer.init}
    source = {"root": str(data.layout.root), "format": data.layout.format, "val_fraction": cfg.val_fraction,
              "seed": cfg.seed, "train_on": cfg.train_on, "train_images": len(data.train), "val_images": len(data.val)}
    run_state: dict[str, Any] = {}
    if with_optimizer:
        run_state = {"optimizer": parts.optimizer.state_dict(), "scaler": parts.scaler.state_dict(),
                     "scheduler": parts.scheduler.state_dict(), "rng": {"torch": torch.get_rng_state()}}
        if trainer.device.type == "cuda":
            run_state["rng"]["cuda"] = torch.cuda.get_rng_state(trainer.device)
        if trainer.ema is not None:
            run_state["training_weights"] = cpu_state(parts.model)
            run_state["ema_steps"] = int(trainer.ema.n_averaged)
        if parts.aux is not None:
            run_state["aux_heads"] = cpu_state(parts.aux)
    return make_checkpoint(trainer.eval_model, data.table,
                           input_description(data.size, cfg.resize, parts.model.size_multiple),
                           data=source, training=training, **run_state)


def restore(trainer: "Trainer", ckpt: dict[str, Any]) -> None:
    """Put the trainer back where `ckpt` (a last.pt) left it."""
    parts = trainer.parts
    if trainer.ema is not None:
        parts.model.load_state_dict(ckpt["training_weights"])
        trainer.ema.module.load_state_dict(ckpt["model"]["state_dict"])
        trainer.ema.n_averaged.fill_(ckpt["ema_steps"])
    else:
        parts.model.load_state_dict(ckpt["model"]["state_dict"])
    if parts.aux is not None:
        parts.aux.load_state_dict(ckpt["aux_heads"])
    parts.optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scheduler"):
        parts.scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        parts.scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    if "cuda" in ckpt["rng"] and trainer.device.type == "cuda":
        torch.cuda.set_rng_state(ckpt["rng"]["cuda"], trainer.device)
    trainer.epoch = int(ckpt["training"]["epoch"])
    trainer.history = list(ckpt["training"]["history"])
    trainer.resumes = list(ckpt["training"].get("resumes", []))
    trainer.init = ckpt["training"].get("init")
    best = ckpt["training"].get("best_val_mean_iou")
    trainer.best_miou = -math.inf if best is None else float(best)
