"""Figures: training curves, per-class IoU bars, the confusion matrix, and the notebook's image |
true mask | predicted mask comparison. Figures are drawn on `matplotlib.figure.Figure` objects, never
through pyplot, so roadseg neither chooses nor changes the caller's matplotlib backend.

Usage: ``plot_curves(history, "runs/x/curves.png"); compare_figure(rgb, truth, pred, table, "cmp.png")``
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..classes import ClassTable
from ..data.imageio import atomic_write
from ..inference.render import colorize


def _save(fig: Figure, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))


def figure_png(fig: Figure) -> bytes:
    """A figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def plot_curves(history: list[dict], path: str | Path, note: str = "") -> Path:
    """Loss, pixel accuracy and mean IoU per epoch, train and val, written to `path`."""
    return _save(curves_figure(history, note), path)


def best_epoch(history: list[dict]) -> int | None:
    """The epoch with the best val mean IoU (train mean IoU without a val split), as best.pt holds."""
    key = "val_mean_iou" if any(row.get("val_mean_iou") is not None for row in history) else "train_mean_iou"
    scored = [row for row in history if row.get(key) is not None]
    return max(scored, key=lambda row: row[key])["epoch"] if scored else None


def curves_figure(history: list[dict], note: str = "") -> Figure:
    """Loss, pixel accuracy and mean IoU per epoch, train and val; the best epoch marked; `note`
    (e.g. that early stopping ended the run) as the title."""
    fig = Figure(figsize=(14, 4.4 if note else 4))
    axes = fig.subplots(1, 3)
    epochs = [row["epoch"] for row in history]
    best = best_epoch(history)
    for ax, key, title in zip(axes, ("loss", "pixel_accuracy", "mean_iou"), ("loss", "pixel accuracy", "mean IoU")):
        for split in ("train", "val"):
            values = [row.get(f"{split}_{key}") for row in history]
            if any(v is not None and v == v for v in values):
                ax.plot(epochs, values, marker="o", ms=3, label=split)
        if best is not None:
            ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best}")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    if note:
        fig.suptitle(note)
    return fig


def iou_bars_figure(names: list[str], ious: list[float | None], colors: list) -> Figure:
    """Per-class IoU as horizontal bars in the class colours (absent classes left empty)."""
    fig = Figure(figsize=(7, 0.32 * len(names) + 1))
    ax = fig.subplots()
    values = [0.0 if v is None else v for v in ious]
    ax.barh(range(len(names)), values, color=[np.asarray(c) / 255 for c in colors], edgecolor="black", linewidth=0.4)
    for i, v in enumerate(ious):
        ax.text((v or 0) + 0.01, i, "absent" if v is None else f"{v:.3f}", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("IoU")
    ax.grid(axis="x", alpha=0.3)
    return fig


def confusion_figure(matrix: np.ndarray, names: list[str]) -> Figure:
    """The row-normalised confusion matrix (truth in rows) as a heatmap with class names."""
    m = np.asarray(matrix, dtype=np.float64)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    size = 0.38 * len(names) + 2
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(names) <= 16:
        for i in range(len(names)):
            for j in range(len(names)):
                if norm[i, j] >= 0.01:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] < 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def compare_figure(image: np.ndarray, truth: np.ndarray | None, pred: np.ndarray, table: ClassTable,
                   path: str | Path, title: str = "") -> Path:
    """The notebook's figure: input image, true mask, predicted mask, with a legend of class colours."""
    panels = [("Input Image", image)]
    if truth is not None:
        panels.append(("True Mask", colorize(truth, table)))
    panels.append(("Predicted Mask", colorize(pred, table)))
    fig = Figure(figsize=(5 * len(panels), 4.4))
    axes = fig.subplots(1, len(panels))
    for ax, (name, img) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img)
        ax.set_title(name)
        ax.axis("off")
    present = np.unique(np.concatenate([pred.ravel()] + ([truth.ravel()] if truth is not None else [])))
    handles = [Patch(color=np.asarray(table.colors[i]) / 255, label=table.names[i])
               for i in present if i < table.num_classes]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(bottom=0.16)
    return _save(fig, path)


def histogram_figure(values: list[float], title: str = "per-frame mean IoU") -> Figure:
    """A histogram of values in [0, 1] (e.g. every frame's mean IoU)."""
    fig = Figure(figsize=(7, 3))
    ax = fig.subplots()
    ax.hist([v for v in values if v is not None], bins=20, range=(0, 1), color="#4a7ab5", edgecolor="white")
    ax.set_xlabel(title)
    ax.set_ylabel("frames")
    ax.grid(axis="y", alpha=0.3)
    return fig
