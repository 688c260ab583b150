"""Where a model misses one class: its recall by the width of each ground-truth object (connected
component of the class, width = the median of its rows' lengths in pixels at the mask's resolution),
what the missed pixels are predicted as, and the frames that hold the most missed pixels.

Usage:
    python benchmarks/class_recall.py --model camvid --data ../shared/data/camvid --class Pole [--split val]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy import ndimage

import roadseg
from roadseg.data import discover
from roadseg.data.imageio import read_image, read_mask

WIDTHS = (0, 2, 3, 4, 6, 10, 10**6)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--class", dest="name", required=True, help="a class name of the model, e.g. Pole")
    p.add_argument("--split", default="val")
    p.add_argument("--frames", type=int, default=10, help="how many of the worst frames to list")
    a = p.parse_args(argv)
    predictor = roadseg.load(a.model, device="cpu")
    names = list(predictor.table.names)
    if a.name not in names:
        print(f"roadseg: {a.model} has no class {a.name!r}; its classes: {', '.join(names)}", file=sys.stderr)
        return 2
    cls, n = names.index(a.name), len(names)
    found, total, objects = np.zeros((3, len(WIDTHS) - 1))
    read_as = np.zeros(n)
    frames = []
    for pair in discover(a.data).splits[a.split]:
        mask = read_mask(pair.mask)
        pred = predictor.predict(read_image(pair.image))
        truth = mask == cls
        labels, _ = ndimage.label(truth)
        for i, obj in enumerate(ndimage.find_objects(labels), 1):
            comp = labels[obj] == i
            rows = comp.sum(1)
            b = np.searchsorted(WIDTHS, np.median(rows[rows > 0]), side="right") - 1
            found[b] += (pred[obj][comp] == cls).sum()
            total[b] += comp.sum()
            objects[b] += 1
        missed = truth & (pred != cls)
        read_as += np.bincount(pred[missed], minlength=n)[:n]
        frames.append((int(missed.sum()), int(truth.sum()), pair.image.name))
    print(f"{a.name} on {a.split} ({len(frames)} frames), {a.model}")
    for i in (i for i in range(len(WIDTHS) - 1) if objects[i]):
        top = f"{WIDTHS[i + 1]}" if WIDTHS[i + 1] < 10**6 else ""
        print(f"  width {WIDTHS[i]}-{top} px: {int(objects[i]):4d} objects, {total[i] / max(total.sum(), 1):4.0%} of "
              f"the pixels, recall {found[i] / max(total[i], 1):.2f}")
    print("  missed pixels read as: " + ", ".join(f"{names[k]} {v / read_as.sum():.0%}"
                                                  for k, v in sorted(enumerate(read_as), key=lambda kv: -kv[1]) if v))
    print("  frames with the most missed pixels (missed / all):")
    for missed, alls, name in sorted(frames, reverse=True)[:a.frames]:
        print(f"    {name}: {missed} / {alls}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
