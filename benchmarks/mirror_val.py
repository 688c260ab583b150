"""A model's scores on a split's frames and on the same frames mirrored left to right (its masks mirrored
back), and their mean: a model trained with flips should score the same both ways round, so a gap says
how much of one orientation's score is luck of that orientation.

Usage:
    python benchmarks/mirror_val.py --model camvid --data ../shared/data/camvid [--split val] [--model M2 ...]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

import roadseg
from roadseg.data import discover
from roadseg.evaluation.evaluate import predict_frames
from roadseg.evaluation.metrics import ConfusionMatrix


def mirror_scores(model: str, data: str, split: str) -> tuple[dict, dict, list[str]]:
    """(scores on the frames, scores on the mirrored frames, class names) of one model."""
    predictor = roadseg.load(model, device="cpu")
    names = list(predictor.table.names)
    ignore = predictor.table.ignore_index
    plain, mirrored = ConfusionMatrix(len(names), ignore), ConfusionMatrix(len(names), ignore)
    for frame in predict_frames(predictor, discover(data).splits[split], full_res=True):
        truth = torch.from_numpy(frame.mask)
        plain.update(torch.from_numpy(frame.pred), truth)
        back = predictor.ids(np.ascontiguousarray(frame.image[None, :, ::-1]), frame.mask.shape)[0, :, ::-1]
        mirrored.update(torch.from_numpy(back.copy()), truth)
    return plain.compute(), mirrored.compute(), names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, action="append", help="a model (repeat for more)")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val")
    a = p.parse_args(argv)
    for model in a.model:
        plain, mirrored, names = mirror_scores(model, a.data, a.split)
        mean = (plain["mean_iou"] + mirrored["mean_iou"]) / 2
        print(f"{model}: {a.split} mIoU {plain['mean_iou']:.4f}, mirrored {mirrored['mean_iou']:.4f}, mean {mean:.4f}")
        for label, s in (("  frames  ", plain), ("  mirrored", mirrored)):
            print(label + " " + " ".join(f"{n} {v:.3f}" for n, v in zip(names, s["per_class_iou"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
