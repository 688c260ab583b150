"""The training loop: `Trainer` runs epochs over the splits' batches (`roadseg.data.loader`; train,
then val), checks the loss, saves last.pt/best.pt after every epoch on rank 0, and stops early or on
a signal.

Usage::

    trainer = Trainer(cfg, prepare_data(cfg), Path("runs/x"))
    trainer.fit()
"""
from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..accel.rows import class_ids
from ..checkpoint import save_checkpoint
from ..config import TrainConfig
from ..data import SampleCache
from ..data.loader import batches, default_workers, ranks_here
from ..device import autocast
from ..errors import RoadsegError
from ..evaluation.metrics import ConfusionMatrix
from .build import PreparedData, build_parts
from .distill import distillation_loss
from .distributed import World
from .init import set_encoder_trainable
from .outputs import RunLog
from .signals import Interrupted, StopSignals
from .state import run_checkpoint


def epoch_order(n: int, seed: int, epoch: int, world: World) -> torch.Tensor:
    """This rank's sample order for one epoch: a DistributedSampler shuffled by (seed, epoch) only, so
    resume repeats it, and the ranks' batches together form the single-process global batch."""
    from torch.utils.data import DistributedSampler
    sampler = DistributedSampler(range(n), num_replicas=world.size, rank=world.rank, shuffle=True,
                                 seed=seed * 1_000_003)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)


def ema_update(decay: float) -> Callable[[list, list, torch.Tensor], None]:
    """The weight average's step: decay warmed up as min(decay, (1 + n) / (10 + n)) after n updates (as
    timm's ModelEma does). Without the warm-up the initial weights and batch-norm statistics keep a
    share of decay**n: 0.23 of the first batch norm's variance after 32 CamVid epochs at 0.999, which
    held the average at val mIoU 0.07 while the trained weights scored 0.56."""
    def update(averaged: list, current: list, n: torch.Tensor) -> None:
        steps = float(n)
        d = min(decay, (1.0 + steps) / (10.0 + steps))
        if torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1.0 - d)
        else:  # integer buffers (batch norm's step count): lerp takes only floats
            for a, c in zip(averaged, current):
                a.copy_(a * d + c * (1.0 - d))
    return update


class Trainer:
    """One run: the parts built from `cfg` (`self.parts`), the epoch, history and best score; `fit()`
    trains to `cfg.epochs`."""

    def __init__(self, cfg: TrainConfig, data: PreparedData, out: Path, world: World | None = None,
                 resume: bool = False) -> None:
        self.cfg, self.data, self.out = cfg, data, out
        self.world = world or World.from_env(cfg.device)
        self.device = self.world.device
        self.batch_size = self.world.local_batch(cfg.batch_size)
        self.workers = cfg.workers if cfg.workers is not None else default_workers(
            self.device.type == "cuda", ranks_here())
        self.parts = build_parts(cfg, data, self.world, fresh=not resume)
        self.ema = None
        if cfg.ema:
            from torch.optim.swa_utils import AveragedModel
            self.ema = AveragedModel(self.parts.model, multi_avg_fn=ema_update(cfg.ema), use_buffers=True)
        self.compile_seconds: float | None = None
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best_miou = -math.inf
        self.resumes: list[dict[str, Any]] = []  # settings changed by each --resume
        self.init = self.parts.init  # where the weights started (--init), kept across resumes
        self.signals = StopSignals()
        self.log = RunLog(out, cfg.tensorboard and self.world.main, cfg.progress,
                          mlflow=cfg.to_dict() if cfg.mlflow and self.world.main else None)

    @property
    def model(self) -> torch.nn.Module:
        return self.parts.model

    @property
    def eval_model(self) -> torch.nn.Module:
        """What validation runs and checkpoints hold: the weight average with --ema, else the model."""
        return self.ema.module if self.ema is not None else self.parts.model

    def _run_epoch(self, cache: SampleCache, train: bool) -> dict[str, float]:
        """One pass over `cache`; returns loss, pixel accuracy and mean IoU summed over ranks."""
        cfg, world, parts = self.cfg, self.world, self.parts
        # validation runs the bare network: through DDP, a rank with no val frames of its own would leave
        # the others waiting in its collective calls (its frames are summed over ranks below anyway)
        net = parts.net if train or (not world.distributed and self.ema is None) else self.eval_model
        net.train(train)
        n = len(cache)
        order = epoch_order(n, cfg.seed, self.epoch, world) if train else world.shard(torch.arange(n), pad=False)
        transform = parts.augmenter if train else None
        cm = ConfusionMatrix(self.data.table.num_classes, self.data.table.ignore_index)
        total_loss, total_count = 0.0, 0
        bar = None
        if cfg.progress and world.main:
            from tqdm import tqdm
            desc = f"epoch {self.epoch + 1}/{cfg.epochs} {'train' if train else 'val'}"
            bar = tqdm(total=len(order), desc=desc, unit="img", leave=False, dynamic_ncols=True, disable=None)
        feed = batches(cache, order, self.batch_size, transform, cfg.seed, self.epoch, self.workers,
                       pin_memory=self.device.type == "cuda")
        for step, (images, masks) in enumerate(feed):
            t_step = time.perf_counter()
            images = images.to(self.device, memory_format=parts.memory_format, non_blocking=True)
            masks = masks.to(self.device, non_blocking=True)
            with torch.set_grad_enabled(train), autocast(self.device, cfg.amp):
                logits = net(images)
                loss = parts.loss_fn(logits, masks)
                if train and parts.teacher is not None:
                    loss = loss + cfg.distill_weight * distillation_loss(
                        logits, parts.teacher(images), masks, cfg.distill_temperature, self.data.table.ignore_index)
                if train and parts.aux is not None:
                    loss = loss + cfg.aux_weight * parts.aux.loss(parts.loss_fn, masks)
            if not torch.isfinite(loss):
                raise RoadsegError(
                    f"loss became {loss.item()} at epoch {self.epoch + 1}, step {step + 1}; "
                    f"last good checkpoint kept in {self.out}; likely causes: learning rate too high "
                    f"(--lr {cfg.lr}) or bad labels (run `roadseg check`)")
            if train:
                parts.optimizer.zero_grad(set_to_none=True)
                parts.scaler.scale(loss).backward()
                parts.scaler.step(parts.optimizer)
                parts.scaler.update()
                parts.scheduler.step()
                if self.ema is not None:
                    self.ema.update_parameters(parts.model)
            if cfg.compile and train and self.compile_seconds is None:
                self.compile_seconds = time.perf_counter() - t_step
                if world.main and cfg.progress:
                    print(f"torch.compile: first step took {self.compile_seconds:.1f}s (compiling included)", flush=True)
            if self.signals.received is not None:
                self._interrupted(step)
            total_loss += loss.item() * len(images)
            total_count += len(images)
            cm.update(class_ids(logits.detach()), masks)
            if bar is not None:
                bar.update(len(images))
                bar.set_postfix(loss=f"{total_loss / total_count:.4f}")
        if bar is not None:
            bar.close()
        totals = world.sum(torch.tensor([total_loss, float(total_count)], dtype=torch.float64))
        total_loss, total_count = float(totals[0]), int(totals[1])
        cm.matrix = world.sum(cm.matrix)  # summed over ranks, never averaged
        scores = cm.compute()
        return {"loss": total_loss / max(total_count, 1), "pixel_accuracy": scores["pixel_accuracy"],
                "mean_iou": scores["mean_iou"]}

    def _interrupted(self, step: int) -> None:
        """Abandon the current epoch: last.pt already holds the last complete one."""
        signum = self.signals.received or signal.SIGINT
        name = signal.Signals(signum).name
        raise Interrupted(signum, f"{name} received at epoch {self.epoch + 1}, step {step + 1}; that epoch was "
                          f"abandoned and {self.out / 'last.pt'} holds epoch {self.epoch}; continue with: "
                          f"roadseg train --resume {self.out}")

    def fit(self) -> list[dict[str, Any]]:
        """Train to cfg.epochs (or an early stop); SIGINT/SIGTERM end it cleanly after the current step."""
        with self.signals:
            return self._fit()

    def _fit(self) -> list[dict[str, Any]]:
        cfg, main = self.cfg, self.world.main
        if main and not (self.out / "last.pt").exists():
            save_checkpoint(run_checkpoint(self), self.out / "last.pt")  # epoch 0: resumable from the first step
        while self.epoch < cfg.epochs:
            t0 = time.perf_counter()
            if cfg.freeze_encoder:  # derived from the epoch, so a resumed run freezes exactly as before
                set_encoder_trainable(self.parts.model, self.epoch >= cfg.freeze_encoder)
            train_scores = self._run_epoch(self.data.train, train=True)
            with torch.no_grad():
                val_scores = self._run_epoch(self.data.val, train=False) if len(self.data.val) else {}
            self.epoch += 1
            row: dict[str, Any] = {"epoch": self.epoch, "lr": self.parts.optimizer.param_groups[0]["lr"]}
            row.update({f"train_{k}": v for k, v in train_scores.items()})
            row.update({f"val_{k}": v for k, v in val_scores.items()})
            row["seconds"] = round(time.perf_counter() - t0, 2)
            self.history.append(row)
            score = val_scores.get("mean_iou", train_scores["mean_iou"])
            improved = score > self.best_miou
            if improved:
                self.best_miou = score
            if main:
                save_checkpoint(run_checkpoint(self), self.out / "last.pt")
                if improved:
                    save_checkpoint(run_checkpoint(self, with_optimizer=False), self.out / "best.pt")
                self.log.epoch(self.history)
            if self.should_stop():
                if main:
                    note = f"early stop after epoch {self.epoch}: val mIoU has not improved for {cfg.patience} epochs"
                    print(note, flush=True)
                    self.log.epoch(self.history, note)  # curves.png says so
                break
        return self.history

    def should_stop(self) -> bool:
        """Early stopping: `patience` epochs since the best val mean IoU (derived from the history)."""
        if self.cfg.patience <= 0 or not self.history:
            return False
        key = "val_mean_iou" if self.history[0].get("val_mean_iou") is not None else "train_mean_iou"
        scores = [row[key] for row in self.history]
        best_epoch = max(range(len(scores)), key=lambda i: scores[i])
        return len(scores) - 1 - best_epoch >= self.cfg.patience

    def close(self, status: str = "FINISHED") -> None:
        """Close the run's outputs (`status` is what MLflow records: FINISHED, KILLED or FAILED)."""
        self.log.close(status)
        if self.world.distributed:  # DDP's reducer must go before its process group, or exit may abort
            import gc
            self.parts.net = self.parts.model
            gc.collect()
        self.world.close()
