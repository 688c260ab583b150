"""What a run writes as it goes, besides checkpoints: metrics.csv, curves.png, TensorBoard scalars
(with --tensorboard), MLflow records (with --mlflow, `roadseg.training.tracking`) and one printed
line per epoch.

Usage::

    log = RunLog(run_dir, tensorboard=False)
    log.epoch(history)          # after each epoch, on rank 0
    log.close("FINISHED")
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..data.imageio import atomic_write
from ..errors import InputError

METRIC_COLUMNS = ["epoch", "train_loss", "train_pixel_accuracy", "train_mean_iou", "val_loss",
                  "val_pixel_accuracy", "val_mean_iou", "lr", "seconds"]


def format_row(row: dict[str, Any]) -> str:
    """One line of epoch results."""
    parts = [f"epoch {row['epoch']}"]
    for key in METRIC_COLUMNS[1:7]:
        if row.get(key) is not None:
            parts.append(f"{key} {row[key]:.4f}")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


class RunLog:
    """metrics.csv, curves.png, TensorBoard event files and MLflow records of one run folder."""

    def __init__(self, out: Path, tensorboard: bool = False, progress: bool = True,
                 mlflow: dict[str, Any] | None = None) -> None:
        """`mlflow`: the resolved settings to log to MLflow, or None for no MLflow."""
        self.out, self.progress = out, progress
        self.tracker = None
        if mlflow is not None:
            from .tracking import MlflowTracker
            self.tracker = MlflowTracker(out, mlflow)
        self._writer_class = None
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise InputError(None, "--tensorboard needs the tensorboard package",
                                 "pip install tensorboard, or leave --tensorboard off (metrics.csv is always written)") from None
            self._writer_class = SummaryWriter

    def epoch(self, history: list[dict[str, Any]], note: str = "") -> None:
        """Write everything for the epoch that ends `history`."""
        from ..evaluation.plots import plot_curves
        self.write_metrics(history)
        plot_curves(history, self.out / "curves.png", note)
        self.tensorboard(history[-1])
        if self.tracker is not None and not note:
            self.tracker.epoch(history[-1])
        if self.progress and not note:
            print(format_row(history[-1]), flush=True)

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
        atomic_write(self.out / "metrics.csv", lambda tmp: tmp.write_text(buf.getvalue()))

    def tensorboard(self, row: dict[str, Any]) -> None:
        """TensorBoard scalars for one epoch (RUN/tensorboard/), when asked for."""
        if self._writer_class is None:
            return
        if self._writer is None:
            self._writer = self._writer_class(log_dir=str(self.out / "tensorboard"))
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                split, _, name = key.partition("_")
                tag = f"{name}/{split}" if split in ("train", "val") else key
                self._writer.add_scalar(tag, value, row["epoch"])
        self._writer.flush()

    def close(self, status: str = "FINISHED") -> None:
        if self.tracker is not None:
            self.tracker.finish(status)
        if self._writer is not None:
            self._writer.close()
