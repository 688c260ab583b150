"""The batch path: workers, per-sample augmentation seeds and the --workers / --cache-gb defaults."""
from pathlib import Path

import numpy as np
import torch

from roadseg.data import SampleCache, discover, split_pairs
from roadseg.data.class_weights import id_counts
from roadseg.data import loader
from roadseg.data.augment import Augmenter

from ..conftest import save


def test_batches_do_not_depend_on_workers_or_order(carla_dir):
    cache = SampleCache.load(split_pairs(discover(carla_dir), 0.0, 0)[0], (64, 96), cache_bytes=0)
    aug = Augmenter((32, 32), (0.75, 1.5), hflip=0.5, color=0.2)
    order = torch.tensor([5, 1, 7, 3, 0, 2])
    here = list(loader.batches(cache, order, 4, aug, seed=1, epoch=2, workers=0))
    pooled = list(loader.batches(cache, order, 4, aug, seed=1, epoch=2, workers=2))
    assert [b[0].shape[0] for b in here] == [4, 2]
    for (x, y), (u, v) in zip(here, pooled):
        assert torch.equal(x, u) and torch.equal(y, v)
    # a sample's augmentation is its own: the same at another position of another order
    alone = next(loader.batches(cache, torch.tensor([7]), 4, aug, seed=1, epoch=2))
    assert torch.equal(alone[0][0], here[0][0][2])
    other_epoch = next(loader.batches(cache, torch.tensor([7]), 4, aug, seed=1, epoch=3))
    assert not torch.equal(alone[0], other_epoch[0])


def _donor_stream(carla_dir, **donor_settings):
    """One epoch of a donor-drawing augmenter (paste or CutMix) with and without workers, the same epoch
    without it, and each sample's donor (None for most or some)."""
    cache = SampleCache.load(split_pairs(discover(carla_dir), 0.0, 0)[0], (64, 96), cache_bytes=0)
    plain = Augmenter((32, 32), (0.75, 1.5), hflip=0.5, color=0.2)
    drawing = Augmenter((32, 32), (0.75, 1.5), hflip=0.5, color=0.2, **donor_settings)
    order = torch.arange(len(cache))
    here = next(loader.batches(cache, order, len(cache), drawing, seed=1, epoch=2, workers=0))
    pooled = next(loader.batches(cache, order, len(cache), drawing, seed=1, epoch=2, workers=2))
    assert torch.equal(here[0], pooled[0]) and torch.equal(here[1], pooled[1])
    without = next(loader.batches(cache, order, len(cache), plain, seed=1, epoch=2))
    donors = [drawing.donor(1, 2, i, len(cache)) for i in range(len(cache))]
    assert any(d is not None for d in donors) and any(d is None for d in donors)
    return here, without, donors


def test_cutmix_is_the_same_with_workers_and_changes_only_mixed_samples(carla_dir):
    here, without, donors = _donor_stream(carla_dir, cutmix=0.5)
    for i, d in enumerate(donors):
        changed = (here[0][i] != without[0][i]).any(0)
        assert not changed.any() if d is None else 0.2 <= changed.float().mean() <= 0.5  # the box: 25-50%


def test_paste_is_the_same_with_workers_and_changes_only_pasted_samples(carla_dir):
    here, without, donors = _donor_stream(carla_dir, paste=(7,), paste_prob=0.5)  # Road
    for i, d in enumerate(donors):  # a sample without a donor is augmented exactly as without --paste
        same = torch.equal(here[1][i], without[1][i])
        assert same if d is None else (here[1][i] == 7).sum() >= (without[1][i] == 7).sum()
    assert any(not torch.equal(here[1][i], without[1][i]) for i, d in enumerate(donors) if d is not None)


def test_defaults_follow_cores_and_memory(monkeypatch):
    monkeypatch.setattr(loader, "cpu_cores", lambda: 2)
    assert loader.default_workers(cuda=False) == 0 and loader.default_workers(cuda=True) == 1
    monkeypatch.setattr(loader, "cpu_cores", lambda: 16)
    assert loader.default_workers(cuda=False) == 3 and loader.default_workers(cuda=True) == 8
    assert loader.default_workers(cuda=True, ranks_here=8) == 1
    monkeypatch.setattr(loader, "available_memory", lambda: 8_000_000_000)
    assert loader.cache_budget(None) == 4_000_000_000 and loader.cache_budget(None, ranks_here=2) == 2_000_000_000
    assert loader.cache_budget(0.5) == 500_000_000 and loader.cache_budget(0.0) == 0


def test_augmented_counts_are_those_of_the_first_epoch_and_follow_the_paste(carla_dir):
    cache = SampleCache.load(split_pairs(discover(carla_dir), 0.0, 0)[0], (64, 96), cache_bytes=0)
    plain = Augmenter((32, 32), (0.75, 1.5), hflip=0.5, color=0.2)
    pasting = Augmenter((32, 32), (0.75, 1.5), hflip=0.5, color=0.2, paste=(7,), paste_prob=1.0)  # Road
    counts = loader.augmented_counts(cache, plain, seed=1)
    _, masks = next(loader.batches(cache, torch.arange(len(cache)), len(cache), plain, seed=1, epoch=0))
    assert counts.shape == (len(cache), 256) and (counts.sum(1) == 32 * 32).all()
    assert (counts == id_counts(masks)).all()
    assert loader.augmented_counts(cache, pasting, seed=1)[:, 7].sum() > counts[:, 7].sum()


def _one_sided_dir(root: Path, count: int = 8) -> Path:
    """CARLA-layout frames whose class 5 (a pole) stands only in the left quarter, as CamVid's lean left."""
    for k in range(count):
        mask = np.full((32, 48, 3), 1, np.uint8)
        mask[:, 2 + k % 6:6 + k % 6] = 5
        save(root / "CameraRGB" / f"{k:03d}.png", mask * 40)
        save(root / "CameraMask" / f"{k:03d}.png", mask)
    return root


def test_pasted_stream_is_mirror_balanced(tmp_path):
    # the donor is flipped on its own draws, so pasted poles land on both sides as often as the frame's own
    cache = SampleCache.load(split_pairs(discover(_one_sided_dir(tmp_path)), 0.0, 0)[0], (32, 48))
    pasting = Augmenter(None, hflip=0.5, paste=(5,), paste_prob=1.0)
    left = right = both = 0
    epochs = 40
    for epoch in range(epochs):
        samples = loader.EpochSamples(cache, pasting, seed=3, epoch=epoch)
        for i in range(len(cache)):
            _, mask = samples[i]
            cols = np.nonzero((mask == 5).any(0))[0]
            on_left, on_right = (cols < 24).any(), (cols >= 24).any()
            left, right, both = left + on_left, right + on_right, both + (on_left and on_right)
    assert 0.4 < left / (left + right) < 0.6  # 320 samples: a lopsided stream sits far outside
    # own flip and donor flip drawn apart: about half the samples have poles on both sides
    assert 0.35 < both / (epochs * len(cache)) < 0.65
