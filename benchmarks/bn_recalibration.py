"""Batch-norm statistics recomputed for a model's final weights: one pass over the training frames (at
the model's input size, no augmentation, the norms in training mode with a cumulative average, as
SWA's `update_bn` does; dropout off), written as a new checkpoint to score with logit_adjustment.py.

A weight average (`--ema`) keeps the running statistics averaged alongside the weights, which need not
be the statistics of the averaged network; the stepped weights' statistics are a momentum-0.1 average
of the last batches at the training crops. Either may gain from statistics of the whole training set.

Usage:
    python benchmarks/bn_recalibration.py --model runs/X/last.pt [--training-weights] --data CAMVID --out recal.pt
    python benchmarks/logit_adjustment.py --model recal.pt --data CAMVID --taus 0 0.75
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from torch import nn

from roadseg.checkpoint import build_model, save_checkpoint, slim
from roadseg.data import discover, load_pair, select_trained_split
from roadseg.inference.export import load_for_export
from roadseg.inference.processing import Preprocess


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--training-weights", action="store_true", help="the stepped weights of an --ema run's last.pt")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=8)
    a = p.parse_args(argv)
    ckpt = load_for_export(a.model, a.training_weights)
    net = build_model(ckpt)
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over every batch
    pre = Preprocess(ckpt["input"])
    pairs = select_trained_split(discover(a.data), "train", ckpt.get("data", {}))
    net.eval()
    for m in norms:  # only the norms in training mode: dropout stays off, as at inference
        m.train()
    with torch.no_grad():
        for i in range(0, len(pairs), a.batch_size):
            images = [load_pair(pair, pre.size, pre.resize_mode)[0] for pair in pairs[i:i + a.batch_size]]
            net(pre.tensor(torch.from_numpy(np.stack(images))))
    state = net.state_dict()
    out = {**ckpt, "model": {**ckpt["model"], "state_dict": state}}
    save_checkpoint(slim(out), a.out)
    print(f"recomputed {len(norms)} batch norms over {len(pairs)} training frames: wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
