"""A self-contained HTML evaluation report (no network fetches: figures are embedded PNGs).

Headline metrics, per-class IoU bars, the normalised confusion matrix, the worst frames by mean
IoU (image | truth | prediction | error map) and the checkpoint's training curves.

Usage: ``report, frames = evaluate_frames(ckpt, data, worst=6); write_report(report, frames, "report")``
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..classes import ClassTable
from ..data import resize_image
from ..data.imageio import atomic_write
from ..inference.render import colorize
from .evaluate import Frame
from .plots import confusion_figure, curves_figure, figure_png, histogram_figure, iou_bars_figure

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:4px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:10px 16px}
.card b{display:block;font-size:1.6em}table{border-collapse:collapse;font-size:.9em}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}
img{max-width:100%}.frame{margin:12px 0}.frame img{width:100%;image-rendering:pixelated}.meta{color:#666;font-size:.9em}
.sw{display:inline-block;width:.9em;height:.9em;border:1px solid #999;vertical-align:middle;margin-right:4px}
.lg{margin-right:14px;white-space:nowrap}.strip{width:100%;table-layout:fixed}.strip th{text-align:center}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _png(array: np.ndarray) -> bytes:
    import io
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def error_map(pred: np.ndarray, truth: np.ndarray, ignore_index: int | None) -> np.ndarray:
    """Correct pixels dark grey, wrong ones red, ignored ones white."""
    out = np.full(truth.shape + (3,), 60, np.uint8)
    out[pred != truth] = (230, 30, 30)
    if ignore_index is not None:
        out[truth == ignore_index] = (255, 255, 255)
    return out


def frame_strip(frame: Frame, table: ClassTable) -> np.ndarray:
    """image | truth | prediction | error map, side by side at the mask's resolution."""
    h, w = frame.mask.shape
    image = resize_image(frame.image, (h, w))
    gap = np.full((h, 4, 3), 255, np.uint8)
    parts = [image, colorize(frame.mask, table), colorize(frame.pred, table),
             error_map(frame.pred, frame.mask, table.ignore_index)]
    return np.concatenate([x for p in parts for x in (p, gap)][:-1], axis=1)


STRIP_HEADER = ('<table class="strip"><tr><th>image</th><th>truth</th><th>prediction</th>'
                '<th>errors (red: wrong, white: ignored)</th></tr></table>')


def _legend(table: ClassTable) -> str:
    """The class colours, as a row of swatches."""
    items = "".join(f'<span class="lg"><span class="sw" style="background:rgb{tuple(c)}"></span>{html.escape(n)}</span>'
                    for n, c in zip(table.names, table.colors))
    return f'<h2>Colours</h2><p class="legend">{items}</p>'


def _details(details: dict[str, Any]) -> str:
    """The model's network, parameters, input size, training data and the roadseg version."""
    if not details:
        return ""
    params = details.get("parameters")
    text = (f"network <code>{html.escape(str(details.get('network')))}</code>"
            + (f", {params:,} parameters" if isinstance(params, int) else "")
            + f", input {details.get('input')}"
            + (f", trained on <code>{html.escape(str(details['trained_on']))}</code> "
               f"({details.get('train_images')} frames)" if details.get("trained_on") else "")
            + f" · roadseg {html.escape(str(details.get('roadseg')))}")
    return f'<p class="meta">{text}</p>'


def render_html(report: dict[str, Any], worst: list[Frame]) -> str:
    """The report page as one HTML string."""
    esc = html.escape
    table = ClassTable(report["class_names"], [tuple(c) for c in report["class_colors"]], report["ignore_index"])
    cards = "".join(f'<div class="card">{name}<b>{report[key]:.4f}</b></div>' for name, key in [
        ("pixel accuracy", "pixel_accuracy"), ("mean IoU", "mean_iou"),
        ("frequency-weighted IoU", "frequency_weighted_iou"), ("mean class accuracy", "mean_class_accuracy")])
    rows = []
    m = np.asarray(report["confusion_matrix"], dtype=np.float64)
    tp, truth, predicted = np.diag(m), m.sum(1), m.sum(0)
    fmt = lambda v: "–" if v is None or v != v else f"{v:.4f}"  # noqa: E731
    for i, (name, color) in enumerate(zip(report["class_names"], report["class_colors"])):
        iou = report["per_class_iou"][name]
        precision = tp[i] / predicted[i] if predicted[i] else None
        recall = tp[i] / truth[i] if truth[i] else None
        rows.append(f'<tr><td class="l"><span class="sw" style="background:rgb{tuple(color)}"></span>{esc(name)}</td>'
                    f"<td>{fmt(iou)}</td><td>{fmt(precision)}</td><td>{fmt(recall)}</td>"
                    f"<td>{report['class_pixel_share'][name]:.2%}</td></tr>")
    names = report["class_names"]
    parts = [
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>roadseg evaluation</title>"
        f"<style>{CSS}</style></head><body>",
        "<h1>roadseg evaluation report</h1>",
        f'<p class="meta">model <code>{esc(report["model"])}</code> · data <code>{esc(report["data"])}</code> '
        f'({esc(report["format"])}, split {esc(report["split"])}, {report["num_images"]} images, '
        f'{"full resolution" if report["full_res"] else "network size " + "x".join(map(str, report["size"]))})</p>',
        _details(report.get("model_details", {})),
        f'<div class="cards">{cards}</div>',
        "<h2>Per-class IoU</h2>",
        _img(figure_png(iou_bars_figure(names, [report["per_class_iou"][n] for n in names], report["class_colors"])),
             "per-class IoU bar chart"),
        '<table><tr><th class="l">class</th><th>IoU</th><th>precision</th><th>recall (accuracy)</th>'
        "<th>share of pixels</th></tr>" + "".join(rows) + "</table>",
        "<h2>Per-frame mean IoU</h2>",
        _img(figure_png(histogram_figure([f["mean_iou"] for f in report.get("per_frame", [])])),
             "histogram of per-frame mean IoU"),
        "<h2>Confusion matrix (rows: truth, normalised)</h2>",
        _img(figure_png(confusion_figure(np.asarray(report["confusion_matrix"]), names)), "confusion matrix"),
    ]
    if worst:
        half = len(worst) // 2 if len(worst) > 1 else 1
        parts.append(_legend(table))
        for title, frames in ((f"Worst {half} frames by mean IoU", worst[:half]),
                              (f"Best {len(worst) - half} frames by mean IoU", worst[half:][::-1])):
            if not frames:
                continue
            parts.append(f"<h2>{title}</h2>" + STRIP_HEADER)
            for f in frames:
                parts.append(f'<div class="frame"><b>{esc(f.pair.stem)}</b> mean IoU {f.mean_iou:.4f}, pixel accuracy '
                             f"{f.pixel_accuracy:.4f}<br>{_img(_png(frame_strip(f, table)), f.pair.stem)}</div>")
    if report.get("training_history"):
        parts.append("<h2>Training curves</h2>")
        parts.append(_img(figure_png(curves_figure(report["training_history"])), "training curves"))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: dict[str, Any], worst: list[Frame], out: str | Path) -> Path:
    """Write OUT/index.html atomically; returns its path."""
    page = render_html(report, worst)
    return atomic_write(Path(out) / "index.html", lambda tmp: tmp.write_text(page, encoding="utf-8"))
