"""Evaluation of a checkpoint on a dataset split: confusion matrix over the whole set, pixel
accuracy, per-class IoU, mean IoU, frequency-weighted IoU and mean class accuracy.

Usage::

    report = evaluate("runs/demo/train/best.pt", "data", split="val")
    print(format_report(report))
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..classes import TABLE_NAMES, ClassTable, class_table, mapped_table, resolve_ignore
from ..config import parse_size
from ..errors import InputError
from ..data import Pair, SampleCache, check_ids, discover, load_pair, select_trained_split
from ..data.imageio import atomic_write
from ..inference.predictor import Predictor
from ..inference.processing import to_ids
from .metrics import ConfusionMatrix


@dataclass
class Frame:
    """One scored frame: the network-size image, the mask it was scored against, the prediction."""

    pair: Pair
    image: np.ndarray
    mask: np.ndarray
    pred: np.ndarray
    mean_iou: float = math.nan
    pixel_accuracy: float = math.nan


def predict_frames(predictor: Predictor, pairs: list[Pair], full_res: bool = False, batch_size: int = 16,
                   progress: bool = False, class_map: np.ndarray | None = None,
                   ignore: int | None | str = "model") -> Iterator[Frame]:
    """Predictions for every pair, at the model size or (full_res, and always for a native-size
    predictor) at each mask's own size.

    Every file is decoded and checked before the first prediction, so a bad file fails early. Mask ids
    pass through `class_map` when given; `ignore` is the id left unscored ('model': the model's)."""
    table = predictor.table
    ignore = table.ignore_index if ignore == "model" else ignore
    if full_res or predictor.native:
        size = None if predictor.native else predictor.size
        samples = [load_pair(p, size, predictor.resize, mask_size=None, class_map=class_map) for p in pairs]
        for pair, (_, mask) in zip(pairs, samples):
            check_ids(mask, pair.mask, table.num_classes, ignore)
        for pair, (image, mask) in zip(pairs, samples):
            if predictor.native:
                pred = to_ids(predictor.frame_logits(image))[0]
            else:
                pred = predictor.ids(image[None], mask.shape)[0]
            yield Frame(pair, image, mask, pred)
        return
    cache = SampleCache.load(pairs, predictor.size, table.num_classes, ignore, predictor.resize, progress, class_map)
    for start in range(0, len(cache), batch_size):
        images = cache.images[start:start + batch_size].numpy()
        preds = predictor.ids(images)
        for i, pred in enumerate(preds):
            yield Frame(pairs[start + i], images[i], cache.masks[start + i].numpy(), pred)


def evaluate(model: str | Path, data: str | Path, fmt: str = "auto", split: str = "val",
             size: str | None = None, full_res: bool = False, batch_size: int = 16,
             device: str = "auto", progress: bool = False, backend: str = "torch",
             winograd: bool = True, tta: bool | Sequence[float] = False, tile: str | None = None,
             classes: str | None = None, class_map: str | None = None, precision: str = "auto") -> dict[str, Any]:
    """Score a checkpoint (path or shipped name) on one split of a dataset."""
    return evaluate_frames(model, data, fmt, split, size, full_res, batch_size, device, progress, backend=backend,
                           winograd=winograd, tta=tta, tile=tile, classes=classes, class_map=class_map,
                           precision=precision)[0]


def evaluate_frames(model: str | Path, data: str | Path, fmt: str = "auto", split: str = "val",
                    size: str | None = None, full_res: bool = False, batch_size: int = 16,
                    device: str = "auto", progress: bool = False, worst: int = 0,
                    backend: str = "torch", winograd: bool = True,
                    tta: bool | Sequence[float] = False, tile: str | None = None, classes: str | None = None,
                    class_map: str | None = None,
                    ignore_index: str | None = None, precision: str = "auto") -> tuple[dict[str, Any], list[Frame]]:
    """The scores, and the `worst` lowest then the `worst` highest frames by per-frame mean IoU (kept for
    reports; fewer when the split is small); `size` (HxW or
    'native'), `backend`, `winograd`, `tta`, `tile` (HxW) and `precision` as for Predictor."""
    predictor = Predictor.from_checkpoint(model, device, _size(size), backend, winograd, tta,
                                          parse_size(tile) if tile else None, precision)
    table = predictor.table
    layout = discover(data, fmt)
    data_table, lut, ignore = classes or layout.format, None, table.ignore_index
    if class_map:
        data_table, lut, ignore = mapped_table(class_map, layout.format, classes)
    if ignore_index is not None:
        ignore = resolve_ignore(ignore_index, data_table)
    check_tables(table, data_table, layout.root)
    trained = predictor.meta.get("data", {})
    pairs = select_trained_split(layout, split, trained)
    note = split_note(layout, split, trained)
    cm = ConfusionMatrix(table.num_classes, ignore)
    per_frame, kept = [], []
    from tqdm import tqdm
    bar = tqdm(total=len(pairs), desc="evaluate", unit="frame", leave=False, disable=None if progress else True)
    for frame in predict_frames(predictor, pairs, full_res, batch_size, progress, lut, ignore):
        bar.update(1)
        one = ConfusionMatrix(table.num_classes, ignore)
        one.update(torch.from_numpy(frame.pred), torch.from_numpy(frame.mask))
        cm.merge(one.matrix)
        s = one.compute()
        frame.mean_iou, frame.pixel_accuracy = s["mean_iou"], s["pixel_accuracy"]
        per_frame.append({"frame": frame.pair.stem, "mean_iou": _clean(s["mean_iou"]),
                          "pixel_accuracy": _clean(s["pixel_accuracy"])})
        if worst:  # the `worst` lowest and the `worst` highest per-frame mean IoU, for the report
            ranked = sorted(kept + [frame], key=lambda f: (math.isnan(f.mean_iou), f.mean_iou))
            kept = ranked if len(ranked) <= 2 * worst else ranked[:worst] + ranked[-worst:]
    bar.close()
    scores = cm.compute()
    scored = list(range(table.num_classes))
    if lut is not None:  # only the classes the map reaches are scored
        scored = sorted(set(int(v) for v in lut) - {ignore})
        ious = [scores["per_class_iou"][i] for i in scored if not math.isnan(scores["per_class_iou"][i])]
        scores["per_class_iou"] = [v if i in scored else math.nan for i, v in enumerate(scores["per_class_iou"])]
        scores["mean_iou"] = sum(ious) / len(ious) if ious else math.nan
        note = (note + "; " if note else "") + (f"--class-map {class_map}: scored only the {len(scored)} classes it "
                                                f"relates ({', '.join(table.names[i] for i in scored)})")
    report = {
        "model": str(model),
        "data": str(layout.root),
        "format": layout.format,
        "split": split,
        "split_note": note,
        "trained_on_split": trained_on_split(layout, split, trained),
        "size": "native" if predictor.native else list(predictor.size),
        "tile": list(predictor.tile) if predictor.tile else None,
        "full_res": full_res or predictor.native,
        "tta": bool(predictor.tta) if predictor.tta in ((), (1.0,)) else list(predictor.tta),
        "num_images": len(pairs),
        "pixel_accuracy": scores["pixel_accuracy"],
        "mean_iou": scores["mean_iou"],
        "frequency_weighted_iou": scores["frequency_weighted_iou"],
        "mean_class_accuracy": scores["mean_class_accuracy"],
        "per_class_iou": {n: _clean(v) for n, v in zip(table.names, scores["per_class_iou"])},
        "per_class_accuracy": {n: _clean(v) for n, v in zip(table.names, scores["per_class_accuracy"])},
        "class_pixel_share": {n: float(s) for n, s in zip(table.names, _shares(cm.matrix))},
        "confusion_matrix": cm.matrix.tolist(),
        "class_names": list(table.names),
        "class_colors": [list(c) for c in table.colors],
        "ignore_index": ignore,
        "per_frame": per_frame,
        "training_history": predictor.meta.get("training", {}).get("history", []),
        "model_details": model_details(predictor),
    }
    return report, kept


def model_details(predictor: Predictor) -> dict[str, Any]:
    """What the report says about the model: network, parameters, input, training data, roadseg version."""
    from .. import __version__
    meta = predictor.meta
    model, data = meta.get("model", {}), meta.get("data", {})
    return {"network": model.get("arch", meta.get("arch", "unet")), "parameters": model.get("parameters"),
            "input": "x".join(map(str, predictor.size)), "trained_on": data.get("root"),
            "train_images": data.get("train_images"), "roadseg": __version__}


def check_tables(model_table: ClassTable, data_table: str, root: Path) -> None:
    """Refuse to score a model whose classes are not the data's (a CARLA model on CamVid masks would
    print a meaningless score); generic data is checked by its ids only."""
    if data_table == "generic":
        return
    expected = class_table(data_table)
    if model_table.names != expected.names[:max(model_table.num_classes, 1)]:  # a first-N carla table fits
        known = [n for n in TABLE_NAMES if n != "generic" and class_table(n).names == model_table.names]
        model = f"the {known[0]} classes" if known else f"{model_table.num_classes} classes of its own"
        raise InputError(root, f"holds {data_table} masks ({expected.num_classes} classes) but the model predicts {model}",
                         "score it on data with its classes (--classes names the data's table), or fine-tune it "
                         "on this data: roadseg train --init MODEL --data DIR")


def _same_data(layout: Any, trained: dict[str, Any]) -> bool:
    """Whether the model was trained on this layout's folder."""
    root = trained.get("root")
    return bool(root) and Path(root).resolve() == Path(layout.root).resolve()


def trained_on_split(layout: Any, split: str, trained: dict[str, Any]) -> bool:
    """Whether the model was trained on the frames scored: the train split of its own data, or its val
    split after a final `--train-on train+val` run. Such a score is not a held-out one."""
    if not _same_data(layout, trained):
        return False
    return split == "train" or (split == "val" and trained.get("train_on") == "train+val")


def split_note(layout: Any, split: str, trained: dict[str, Any]) -> str:
    """What the scored split is and why, when that is not obvious: a layout without its own val split
    gets the seeded split the model was trained with, which only means something on that dataset."""
    root = trained.get("root")
    same_data = _same_data(layout, trained)
    if split == "val" and trained_on_split(layout, split, trained):
        return "the val split, which this model was trained on (--train-on train+val): not a held-out score"
    if split not in ("train", "val") or "all" not in layout.splits:
        return ""
    fraction, seed = trained.get("val_fraction", 0.2), trained.get("seed", 0)
    drawn = f"the seeded {split} split (val fraction {fraction}, seed {seed}), drawn as at training"
    if root and not same_data:
        return (f"{drawn}; this model was trained on {root}, not this folder, so every frame here is unseen: "
                "--split all scores them all")
    return drawn


def _size(size: str | None) -> tuple[int, int] | str | None:
    """--size: HxW, 'native' or None (the checkpoint's)."""
    return None if not size else "native" if size == "native" else parse_size(size)


def _clean(v: float) -> float | None:
    return None if math.isnan(v) else v


def _shares(matrix: torch.Tensor) -> np.ndarray:
    gt = matrix.sum(1).double()
    return (gt / gt.sum().clamp(min=1)).numpy()


def _tta_words(tta: bool | list[float] | None) -> str:
    if isinstance(tta, list):
        return ", flip TTA at scales " + " ".join(f"{v:g}" for v in tta)
    return ", flip TTA" if tta else ""


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of the scores."""
    where = ("native size" if report["size"] == "native" else "full resolution" if report["full_res"]
             else "size " + "x".join(map(str, report["size"])))
    lines = [f"{report['num_images']} images, split {report['split']}, {where}"
             + _tta_words(report.get("tta"))]
    if report.get("split_note"):
        lines.append(f"note: {report['split_note']}")
    lines.append(f"{'class':<14}{'IoU':>8}{'acc':>8}{'share':>8}")
    for name in report["class_names"]:
        iou, acc = report["per_class_iou"][name], report["per_class_accuracy"][name]
        share = report["class_pixel_share"][name]
        fmt = lambda v: f"{v:8.4f}" if v is not None else f"{'-':>8}"  # noqa: E731
        lines.append(f"{name:<14}{fmt(iou)}{fmt(acc)}{share:8.2%}")
    lines.append(f"pixel accuracy          {report['pixel_accuracy']:.4f}")
    lines.append(f"mean IoU                {report['mean_iou']:.4f}")
    lines.append(f"frequency-weighted IoU  {report['frequency_weighted_iou']:.4f}")
    lines.append(f"mean class accuracy     {report['mean_class_accuracy']:.4f}")
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: str | Path) -> Path:
    """Write the report as JSON (NaN-free), atomically."""
    text = json.dumps(report, indent=2)
    return atomic_write(path, lambda tmp: tmp.write_text(text))
