"""Fine-tuning against training from scratch: for each training-set size, train the same network with
the same epochs, frames and seed once from scratch and once from each `--init` model, and score every
run's last.pt on the same val frames. Prints a markdown table (and adds it to RESULTS.md with --write).

The training frames are the first N of the dataset's train split (CARLA/generic layouts: of the seeded
split), so every run of one size sees the same frames; val is the dataset's own val split.

Usage:
    python benchmarks/transfer.py --data DATA --init camvid-unet --frames 25 50 100 --epochs 10 \
        --size 96x128 --settings arch=unet base_filters=16 batch_norm=true dropout=0.2
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

import roadseg
from roadseg.data import discover, split_pairs
from roadseg.device import cpu_name
from roadseg.evaluation.evaluate import evaluate

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def subset(data: str, count: int, root: Path, val_fraction: float, seed: int) -> Path:
    """A generic-layout folder of links: the first `count` training pairs and every val pair."""
    layout = discover(data)
    train, val = split_pairs(layout, val_fraction, seed)
    for split, pairs in (("train", train[:count]), ("val", val)):
        for pair in pairs:
            for kind, path in (("images", pair.image), ("masks", pair.mask)):
                target = root / f"{split}-{kind}"
                target.mkdir(parents=True, exist_ok=True)
                (target / path.name).symlink_to(path.resolve())
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--init", action="append", default=[], help="a model to fine-tune from (repeatable)")
    p.add_argument("--frames", type=int, nargs="+", default=[25, 50, 100])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--size", default="96x128")
    p.add_argument("--classes", help="class table of the data (e.g. carla08)")
    p.add_argument("--class-map", help="map the data's ids on load (e.g. carla-to-camvid)")
    p.add_argument("--settings", nargs="*", default=[], metavar="KEY=VALUE", help="more training settings")
    p.add_argument("--write", action="store_true", help="add the table to RESULTS.md")
    a = p.parse_args(argv)
    settings = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in a.settings)}
    classes = a.classes or discover(a.data).format  # the data's own table (not the links' generic one)
    settings.update(size=a.size, epochs=a.epochs, progress=False, classes=classes, class_map=a.class_map,
                    val_fraction=0.0)
    starts = ["scratch"] + a.init
    rows = [f"| train frames | {' | '.join(starts)} |", "|" + " --- |" * (len(starts) + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        for count in a.frames:
            cells = []
            for start in starts:
                folder = Path(tmp) / f"n{count}-{start}"
                data = subset(a.data, count, folder / "data", 0.2, settings.get("seed", 0))
                # the generic layout reads images/ + masks/: train on the subset, score on the val pairs
                (data / "images").symlink_to(data / "train-images")
                (data / "masks").symlink_to(data / "train-masks")
                t0 = time.perf_counter()
                run = roadseg.train(data, folder / "run", init=None if start == "scratch" else start, **settings,
                                    format="generic")
                val = folder / "val"
                (val / "images").parent.mkdir(parents=True, exist_ok=True)
                (val / "images").symlink_to(data / "val-images")
                (val / "masks").symlink_to(data / "val-masks")
                score = evaluate(run / "last.pt", val, fmt="generic", split="all", classes=classes)["mean_iou"]
                cells.append(f"{score:.4f}")
                print(f"{count} frames, {start}: val mIoU {score:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
            rows.append(f"| {count} | {' | '.join(cells)} |")
    table = "\n".join(rows)
    print(table)
    if a.write:
        text = RESULTS.read_text() + (
            f"\n## Transfer ({datetime.date.today()}, {cpu_name()}, {os.cpu_count()} cores)\n\n"
            f"Command: `python benchmarks/transfer.py {' '.join(argv or sys.argv[1:])}`; val mIoU on the same "
            "frames for every run.\n\n" + table + "\n")
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
