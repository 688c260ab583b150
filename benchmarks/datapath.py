"""The training data path alone: images/s of decoding + augmentation + batching (`roadseg.data.loader`)
with the sample cache on and off and 0..N DataLoader workers, as ratios against the in-process,
fully cached path measured in the same run; optionally the training steps too (`--train`).

Usage::

    python benchmarks/datapath.py --data ../shared/data/camvid --size 352x480 --crop 288x384 --workers 0 1 2
    python benchmarks/datapath.py --data ../shared/data/camvid --train --arch fastunet --batch-size 8
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from roadseg.config import TrainConfig, parse_size
from roadseg.data import SampleCache, discover, split_pairs
from roadseg.data.augment import Augmenter
from roadseg.data.loader import batches
from roadseg.device import cpu_name


def data_rate(cache: SampleCache, aug: Augmenter, batch_size: int, workers: int, frames: int) -> float:
    """Images/s of the batches of one epoch-like pass over `frames` samples."""
    order = torch.arange(frames) % len(cache)
    start = time.perf_counter()
    count = sum(len(images) for images, _ in batches(cache, order, batch_size, aug, 0, 0, workers))
    return count / (time.perf_counter() - start)


def train_rate(data: str, size: str, crop: str, arch: str, batch_size: int, workers: int, cache_gb: float | None,
               out: str) -> float:
    """Images/s of one training epoch through roadseg's trainer (data path included)."""
    from roadseg.training.build import prepare_data
    from roadseg.training.loop import Trainer
    cfg = TrainConfig(data=data, out=out, format="camvid", size=size, crop=crop, arch=arch, epochs=1,
                      batch_size=batch_size, augment=True, progress=False, workers=workers, cache_gb=cache_gb,
                      dropout=0.1)
    trainer = Trainer(cfg, prepare_data(cfg), Path(out))
    start = time.perf_counter()
    trainer._run_epoch(trainer.data.train, train=True)
    return len(trainer.data.train) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--size", default="352x480")
    p.add_argument("--crop", default="288x384")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--frames", type=int, default=96, help="samples per measurement")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train", action="store_true", help="also time a training epoch through the trainer")
    p.add_argument("--arch", default="fastunet")
    a = p.parse_args()
    size, crop = parse_size(a.size), parse_size(a.crop)
    layout = discover(a.data, "camvid")
    pairs = (layout.splits.get("train") or split_pairs(layout, 0.0, 0)[0])[:a.frames]
    aug = Augmenter(crop, (0.75, 1.5), hflip=0.5, color=0.2, fill_mask=11)
    cached, uncached = SampleCache.load(pairs, size), SampleCache.load(pairs, size, cache_bytes=0)
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} threads; "
          f"{len(pairs)} frames at {a.size}, crops {a.crop}, batch {a.batch_size}")
    reference = data_rate(cached, aug, a.batch_size, 0, len(pairs))
    print(f"data path, cache on, in process (reference): {reference:.1f} img/s")
    for workers in a.workers:
        for name, cache in (("cache on", cached), ("cache off", uncached)):
            if workers == 0 and name == "cache on":
                continue
            rate = data_rate(cache, aug, a.batch_size, workers, len(pairs))
            print(f"data path, {name}, {workers} workers: {rate:.1f} img/s ({rate / reference:.2f}x)")
    if a.train:
        import tempfile
        for workers, cache_gb in ((0, None), (0, 0.0), (1, 0.0)):
            with tempfile.TemporaryDirectory() as out:
                rate = train_rate(a.data, a.size, a.crop, a.arch, a.batch_size, workers, cache_gb, out)
            print(f"training {a.arch}, cache {'off' if cache_gb == 0 else 'on'}, {workers} workers: {rate:.1f} img/s")


if __name__ == "__main__":
    main()
