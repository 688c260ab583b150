"""Batches from a `SampleCache` for training and validation, decoded and augmented in the caller's
process or in `torch.utils.data.DataLoader` worker processes. Each sample's augmentation draws
depend on (seed, epoch, sample index) only, so any number of workers (or none, or another rank
under torchrun) gives the same batches, and `--resume` repeats an epoch exactly. Also the defaults
of `--workers` (from the CPU cores) and `--cache-gb` (a share of the memory available).

Usage::

    for images, masks in batches(cache, order, 8, augmenter, seed=0, epoch=3, workers=2):
        ...                                    # float NCHW in [0,1], long NxHxW
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .augment import Augmenter
from .samples import SampleCache, id_counts, to_tensor

CACHE_SHARE = 0.5   # --cache-gb's default: this share of the memory available at the start


class EpochSamples(Dataset):
    """Sample i of one epoch: the cached or decoded pair, through `transform` reseeded for (seed, epoch, i)."""

    def __init__(self, cache: SampleCache, transform: Augmenter | None = None, seed: int = 0, epoch: int = 0) -> None:
        self.cache, self.transform, self.seed, self.epoch = cache, transform, seed, epoch

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.cache.sample(i)
        if self.transform is not None:
            self.transform.reseed(self.seed, self.epoch, i)
            image, mask = self.transform(image, mask)
            donor = self.transform.donor(self.seed, self.epoch, i, len(self.cache))
            if donor is not None:  # class copy-paste or CutMix: the donor augmented on its own draws
                self.transform.reseed(self.seed, self.epoch, i, donor + 1)
                image, mask = self.transform.paste_over(image, mask, *self.transform(*self.cache.sample(donor)),
                                                        draw=(self.seed, self.epoch, i))
        return image, mask


def collate(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs of uint8 arrays -> (float NCHW images in [0,1], long NxHxW masks)."""
    images = np.stack([np.ascontiguousarray(image) for image, _ in items])
    masks = np.stack([np.ascontiguousarray(mask) for _, mask in items])
    return to_tensor(images), torch.from_numpy(masks).long()


def batches(cache: SampleCache, order: torch.Tensor, batch_size: int, transform: Augmenter | None = None, seed: int = 0,
            epoch: int = 0, workers: int = 0, pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of `order` (sample indices) in that order, prepared by `workers` processes (0: here)."""
    dataset = EpochSamples(cache, transform, seed, epoch)
    index_batches = [order[s:s + batch_size].tolist() for s in range(0, len(order), batch_size)]
    if workers <= 0 or len(index_batches) <= 1:
        for index in index_batches:
            yield collate([dataset[i] for i in index])
        return
    # its own generator: DataLoader draws the workers' base seed from it, which would otherwise shift the
    # global stream (dropout) and make a run with workers differ from one without
    loader = DataLoader(dataset, batch_sampler=index_batches, num_workers=min(workers, len(index_batches)),
                        collate_fn=collate, pin_memory=pin_memory, prefetch_factor=2,
                        generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    yield from loader


def augmented_counts(cache: SampleCache, transform: Augmenter, seed: int = 0, epoch: int = 0) -> np.ndarray:
    """Per-sample id counts (N, 256) of one epoch of the augmented stream: what the network is shown
    (crops, scales, class copy-paste, CutMix), not the frames on disk."""
    dataset = EpochSamples(cache, transform, seed, epoch)
    return id_counts(dataset[i][1] for i in range(len(dataset)))


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def ranks_here() -> int:
    """The training processes on this machine (torchrun's LOCAL_WORLD_SIZE; 1 without torchrun)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def default_workers(cuda: bool, ranks_here: int = 1) -> int:
    """--workers when not given: on a GPU, all but one of this rank's cores (at most 8), so the GPU is
    not kept waiting on decoding and augmentation; on the CPU, which computes the steps itself, a
    quarter of them (none on 2 or 4 cores: there a worker only takes cores from the training)."""
    cores = max(cpu_cores() // max(ranks_here, 1), 1)
    return min(8, cores - 1) if cuda else min(4, cores // 4 - 1 if cores >= 8 else 0)


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable on Linux; else all physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cache_budget(cache_gb: float | None, ranks_here: int = 1) -> int:
    """Bytes this rank may hold in its sample caches: `cache_gb` GB, or by default CACHE_SHARE of the
    memory available, shared by the ranks on this machine."""
    if cache_gb is not None:
        return int(cache_gb * 1e9)
    return int(available_memory() * CACHE_SHARE / max(ranks_here, 1))
