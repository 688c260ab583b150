"""Choose the logit adjustment of a class-weighted model on a validation split: val mIoU (scored at
each mask's full resolution) for several TAU of `roadseg export --logit-adjustment TAU`, computed from
one pass over the frames (the adjustment adds -TAU*log(class weight) to every logit, so it is added
to the upsampled logits here instead of re-running the network per TAU).

Usage:
    python benchmarks/logit_adjustment.py --model runs/camvid-fast/best.pt --data ../shared/data/camvid \
        --taus 0 0.25 0.5 0.75 1.0 [--tta]
"""
from __future__ import annotations

import argparse
import sys

import torch

from roadseg.checkpoint import load_checkpoint
from roadseg.data import discover, load_pair, select_trained_split
from roadseg.evaluation.metrics import ConfusionMatrix
from roadseg.inference.export import training_class_weights
from roadseg.inference.predictor import Predictor


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--taus", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    a = p.parse_args(argv)
    ckpt = load_checkpoint(a.model)
    shift = -torch.log(training_class_weights(ckpt).clamp(min=1e-6))
    predictor = Predictor.from_checkpoint(a.model, a.device, tta=a.tta)
    table = predictor.table
    pairs = select_trained_split(discover(a.data), a.split, ckpt.get("data", {}))
    matrices = {tau: ConfusionMatrix(table.num_classes, table.ignore_index) for tau in a.taus}
    for pair in pairs:
        image, mask = load_pair(pair, predictor.size, predictor.resize, mask_size=None)
        logits = predictor.logits(image[None], mask.shape)[0]
        truth = torch.from_numpy(mask)
        for tau, cm in matrices.items():
            cm.update((logits + tau * shift[:, None, None]).argmax(0), truth)
    for tau, cm in matrices.items():
        s = cm.compute()
        per_class = " ".join(f"{n} {v:.3f}" for n, v in zip(table.names, s["per_class_iou"]))
        print(f"tau {tau:<5} mIoU {s['mean_iou']:.4f}  pixel acc {s['pixel_accuracy']:.4f}  {per_class}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
