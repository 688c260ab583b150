"""Training: Adam + cross-entropy on cached samples, validation every epoch, atomic checkpoints,
metrics.csv, curves.png and exact resume.

Usage::

    cfg = TrainConfig(data="data", out="runs/x", epochs=5)
    run_dir = train(cfg)                 # or train(cfg, resume=True) to continue runs/x
"""
from __future__ import annotations

import csv
import io
import math
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .classes import ClassTable, class_table, resolve_ignore
from .config import TrainConfig
from .data import Layout, SampleCache, check_ids, check_size, discover, parse_size, split_pairs
from .device import amp_dtype, autocast, keep_freed_memory
from .distributed import World, is_main_process
from .errors import InputError, RoadsegError
from .imageio import atomic_write
from .augment import Augmenter
from .losses import make_loss
from .metrics import ConfusionMatrix
from .model import UNet, count_parameters
from .optim import class_weights, make_optimizer, make_scheduler
from .plots import plot_curves
from .winograd import use_for_training

class Interrupted(RoadsegError):
    """Training stopped by SIGINT or SIGTERM; RUN/last.pt holds the last complete epoch."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class StopSignals:
    """While active, SIGINT and SIGTERM set a flag that the training loop checks after each step;
    a second signal interrupts at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


METRIC_COLUMNS = ["epoch", "train_loss", "train_pixel_accuracy", "train_mean_iou", "val_loss",
                  "val_pixel_accuracy", "val_mean_iou", "lr", "seconds"]


@dataclass
class PreparedData:
    """Decoded, validated train and val samples with the class table they use."""

    layout: Layout
    table: ClassTable
    size: tuple[int, int]
    train: SampleCache
    val: SampleCache


def prepare_data(cfg: TrainConfig) -> PreparedData:
    """Discover, split, decode and validate the dataset; nothing is written."""
    size = parse_size(cfg.size)
    check_size(size, 2 ** (cfg.depth - 1))
    layout = discover(cfg.data, cfg.format)
    train_pairs, val_pairs = split_pairs(layout, cfg.val_fraction, cfg.seed)
    ignore = resolve_ignore(cfg.ignore_index, layout.format)
    progress = cfg.progress and is_main_process()
    train = SampleCache.load(train_pairs, size, resize=cfg.resize, progress=progress)
    val = SampleCache.load(val_pairs, size, resize=cfg.resize, progress=progress)
    num_classes = cfg.num_classes
    if num_classes is None and layout.format == "generic":
        num_classes = max(train.max_id(ignore), val.max_id(ignore) if len(val) else 0) + 1
    table = class_table(layout.format, num_classes, ignore)
    for cache in (train, val):
        for i, pair in enumerate(cache.pairs):
            check_ids(cache.masks[i].numpy(), pair.mask, table.num_classes, ignore)
    return PreparedData(layout, table, size, train, val)


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


def epoch_order(n: int, seed: int, epoch: int, world: World) -> torch.Tensor:
    """This rank's sample order for one epoch: a DistributedSampler shuffled by (seed, epoch) only, so
    resume repeats it, and the ranks' batches together form the single-process global batch."""
    from torch.utils.data import DistributedSampler
    sampler = DistributedSampler(range(n), num_replicas=world.size, rank=world.rank, shuffle=True,
                                 seed=seed * 1_000_003)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)


class Trainer:
    """Holds the model, optimizer and history of one run; `fit()` trains to `cfg.epochs`."""

    def __init__(self, cfg: TrainConfig, data: PreparedData, out: Path, world: World | None = None) -> None:
        self.cfg, self.data, self.out = cfg, data, out
        self.world = world or World.from_env(cfg.device)
        self.device = self.world.device
        if self.device.type == "cpu":
            keep_freed_memory()
        self.batch_size = self.world.local_batch(cfg.batch_size)
        torch.manual_seed(cfg.seed)
        self.model = UNet(3, data.table.num_classes, cfg.base_filters, cfg.depth, cfg.dropout, cfg.batch_norm)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model.to(self.device, memory_format=self.memory_format)
        # fp32 steps on the CPU run the wide 3x3 convs as Winograd (bf16 autocast steps do not)
        if cfg.winograd and self.device.type == "cpu" and not cfg.compile:
            use_for_training(self.model)
        self.net: torch.nn.Module = self.model
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel
            if cfg.sync_bn and cfg.batch_norm and self.device.type == "cuda":
                self.net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.net = DistributedDataParallel(self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.compile:
            self.net = torch.compile(self.net)
        self.compile_seconds: float | None = None
        self.optimizer = make_optimizer(self.model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
        steps = math.ceil(math.ceil(len(data.train) / self.world.size) / self.batch_size)
        self.scheduler = make_scheduler(self.optimizer, cfg.schedule, cfg.epochs, steps, cfg.warmup_epochs)
        table = data.table
        self.class_weights = class_weights(cfg.class_weights, data.train.masks, table.num_classes, table.ignore_index)
        self.loss_fn = make_loss(cfg.loss, table.ignore_index, self.class_weights)
        self.augmenter = None
        if cfg.augment or cfg.crop:
            crop = parse_size(cfg.crop) if cfg.crop else None
            if crop is not None:
                check_size(crop, self.model.size_multiple)
            self.augmenter = Augmenter(crop, tuple(cfg.aug_scale) if cfg.augment else (1.0, 1.0),
                                       cfg.aug_hflip if cfg.augment else 0.0, cfg.aug_color if cfg.augment else 0.0,
                                       fill_mask=table.ignore_index if table.ignore_index is not None else 0)
        use_scaler = cfg.amp and amp_dtype(self.device) == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best_miou = -math.inf
        self.signals = StopSignals()
        self.tensorboard = None
        if cfg.tensorboard and self.world.main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise InputError(None, "--tensorboard needs the tensorboard package",
                                 "pip install tensorboard, or leave --tensorboard off (metrics.csv is always written)") from None
            self._tb_class = SummaryWriter

    # ---- checkpoints -------------------------------------------------------------------------
    def state(self, with_optimizer: bool = True) -> dict[str, Any]:
        table = self.data.table
        state: dict[str, Any] = {
            "model": {"settings": dict(self.model.settings),
                      "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                      "parameters": count_parameters(self.model)},
            "classes": table.to_dict(),
            "input": {"size": list(self.data.size), "resize": self.cfg.resize, "channels": "RGB",
                      "range": [0.0, 1.0]},
            "data": {"root": str(self.data.layout.root), "format": self.data.layout.format,
                     "val_fraction": self.cfg.val_fraction, "seed": self.cfg.seed,
                     "train_images": len(self.data.train), "val_images": len(self.data.val)},
            "training": {"epoch": self.epoch, "history": list(self.history), "config": self.cfg.to_dict(),
                         "class_weights": None if self.class_weights is None else self.class_weights.tolist(),
                         "best_val_mean_iou": self.best_miou if self.best_miou > -math.inf else None,
                         "metrics": self.history[-1] if self.history else {}},
        }
        if with_optimizer:
            state["optimizer"] = self.optimizer.state_dict()
            state["scaler"] = self.scaler.state_dict()
            state["scheduler"] = self.scheduler.state_dict()
            state["rng"] = {"torch": torch.get_rng_state()}
            if self.device.type == "cuda":
                state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"]["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scheduler"):
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)
        self.epoch = int(ckpt["training"]["epoch"])
        self.history = list(ckpt["training"]["history"])
        best = ckpt["training"].get("best_val_mean_iou")
        self.best_miou = -math.inf if best is None else float(best)

    # ---- one pass ----------------------------------------------------------------------------
    def _run_epoch(self, cache: SampleCache, train: bool) -> dict[str, float]:
        model, cfg, world = self.net, self.cfg, self.world
        model.train(train)
        n = len(cache)
        order = epoch_order(n, cfg.seed, self.epoch, world) if train else world.shard(torch.arange(n), pad=False)
        transform = self.augmenter if train else None
        if transform is not None:
            transform.reseed(cfg.seed + 7919 * world.rank, self.epoch)
        cm = ConfusionMatrix(self.data.table.num_classes, self.data.table.ignore_index)
        total_loss, total_count = 0.0, 0
        batches = range(0, len(order), self.batch_size)
        bar = None
        if cfg.progress and world.main:
            from tqdm import tqdm
            desc = f"epoch {self.epoch + 1}/{cfg.epochs} {'train' if train else 'val'}"
            bar = tqdm(total=len(order), desc=desc, unit="img", leave=False, dynamic_ncols=True, disable=None)
        for step, start in enumerate(batches):
            t_step = time.perf_counter()
            images, masks = cache.batch(order[start:start + self.batch_size], transform)
            images = images.to(self.device, memory_format=self.memory_format, non_blocking=True)
            masks = masks.to(self.device, non_blocking=True)
            with torch.set_grad_enabled(train), autocast(self.device, cfg.amp):
                logits = model(images)
                loss = self.loss_fn(logits, masks)
            if not torch.isfinite(loss):
                raise RoadsegError(
                    f"loss became {loss.item()} at epoch {self.epoch + 1}, step {step + 1}; "
                    f"last good checkpoint kept in {self.out}; likely causes: learning rate too high "
                    f"(--lr {cfg.lr}) or bad labels (run `roadseg check`)")
            if train:
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
            if cfg.compile and train and self.compile_seconds is None:
                self.compile_seconds = time.perf_counter() - t_step
                if world.main and cfg.progress:
                    print(f"torch.compile: first step took {self.compile_seconds:.1f}s (compiling included)", flush=True)
            if self.signals.received is not None:
                self._interrupted(step)
            total_loss += loss.item() * len(images)
            total_count += len(images)
            cm.update(logits.detach().argmax(1), masks)
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

    # ---- outputs -----------------------------------------------------------------------------
    def _write_metrics(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write(self.out / "metrics.csv", lambda tmp: tmp.write_text(buf.getvalue()))

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
            save_checkpoint(self.state(), self.out / "last.pt")  # epoch 0: resumable from the first step
        while self.epoch < cfg.epochs:
            t0 = time.perf_counter()
            train_scores = self._run_epoch(self.data.train, train=True)
            with torch.no_grad():
                val_scores = self._run_epoch(self.data.val, train=False) if len(self.data.val) else {}
            self.epoch += 1
            row: dict[str, Any] = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"]}
            row.update({f"train_{k}": v for k, v in train_scores.items()})
            row.update({f"val_{k}": v for k, v in val_scores.items()})
            row["seconds"] = round(time.perf_counter() - t0, 2)
            self.history.append(row)
            score = val_scores.get("mean_iou", train_scores["mean_iou"])
            improved = score > self.best_miou
            if improved:
                self.best_miou = score
            if main:
                save_checkpoint(self.state(), self.out / "last.pt")
                if improved:
                    save_checkpoint(self.state(with_optimizer=False), self.out / "best.pt")
                self._write_metrics()
                plot_curves(self.history, self.out / "curves.png")
                self.log_epoch(row)
                if cfg.progress:
                    print(format_row(row), flush=True)
            if self.should_stop():
                if main:
                        print(f"early stop: val mIoU has not improved for {cfg.patience} epochs", flush=True)
                break
        return self.history

    def log_epoch(self, row: dict[str, Any]) -> None:
        """TensorBoard scalars for one epoch, when --tensorboard is on (RUN/tensorboard/)."""
        if not self.cfg.tensorboard:
            return
        if self.tensorboard is None:
            self.tensorboard = self._tb_class(log_dir=str(self.out / "tensorboard"))
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                split, _, name = key.partition("_")
                tag = f"{name}/{split}" if split in ("train", "val") else key
                self.tensorboard.add_scalar(tag, value, row["epoch"])
        self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        self.world.close()

    def should_stop(self) -> bool:
        """Early stopping: `patience` epochs since the best val mean IoU (derived from the history)."""
        if self.cfg.patience <= 0 or not self.history:
            return False
        key = "val_mean_iou" if self.history[0].get("val_mean_iou") is not None else "train_mean_iou"
        scores = [row[key] for row in self.history]
        best_epoch = max(range(len(scores)), key=lambda i: scores[i])
        return len(scores) - 1 - best_epoch >= self.cfg.patience


def format_row(row: dict[str, Any]) -> str:
    """One line of epoch results."""
    parts = [f"epoch {row['epoch']}"]
    for key in METRIC_COLUMNS[1:7]:
        if row.get(key) is not None:
            parts.append(f"{key} {row[key]:.4f}")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> Path:
    """Train a U-Net as `cfg` says; returns the run folder. With `resume`, continue from RUN/last.pt."""
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
            trainer.restore(ckpt)
        if main:
            cfg.save(out / "config.yaml")
        trainer.fit()
    finally:
        trainer.close()
    return out
