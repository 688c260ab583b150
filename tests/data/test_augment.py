"""Augmentation moves image and mask together, crops to size, and repeats for the same (seed, epoch)."""
import numpy as np

from roadseg.data.augment import Augmenter


def _sample():
    # the mask is the image's red channel, so any geometric mismatch would show
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 11, (48, 64), dtype=np.uint8)
    image = np.stack([mask * 20, mask * 0, mask * 0], axis=2).astype(np.uint8)
    return image, mask


def test_geometry_applied_to_both():
    aug = Augmenter((32, 32), scale=(1.0, 1.0), hflip=0.5, color=0.0)
    image, mask = _sample()
    for epoch in range(5):
        aug.reseed(0, epoch)
        img, msk = aug(image, mask)
        assert img.shape == (32, 32, 3) and msk.shape == (32, 32)
        assert np.array_equal(img[:, :, 0], msk * 20)


def test_pads_with_ignore_id_when_scaled_down():
    aug = Augmenter((48, 64), scale=(0.5, 0.5), hflip=0.0, fill_mask=11)
    aug.reseed(0, 0)
    _, msk = aug(*_sample())
    assert msk.shape == (48, 64) and (msk == 11).sum() >= 48 * 64 * 3 // 4 - 64


def test_same_seed_and_epoch_same_result():
    aug = Augmenter((32, 32), scale=(0.75, 1.5), hflip=0.5, color=0.2)
    image, mask = _sample()
    aug.reseed(3, 7)
    a = aug(image, mask)
    aug.reseed(3, 8)
    b = aug(image, mask)
    aug.reseed(3, 7)
    c = aug(image, mask)
    assert np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1])
    assert not np.array_equal(a[0], b[0])


def test_paste_puts_the_donors_classes_over_the_sample():
    aug = Augmenter((48, 64), scale=(1.0, 1.0), hflip=0.0, paste=(3, 5), paste_prob=1.0)
    image, mask = _sample()
    donor_mask = np.roll(mask, 7, axis=1)
    donor_image = np.stack([donor_mask * 20, donor_mask * 0 + 1, donor_mask * 0], axis=2).astype(np.uint8)
    img, msk = aug.paste_over(image, mask, donor_image, donor_mask, draw=(0, 4, 1))
    pasted = np.isin(donor_mask, (3, 5))
    assert np.array_equal(msk[pasted], donor_mask[pasted]) and np.array_equal(msk[~pasted], mask[~pasted])
    assert np.array_equal(img[:, :, 0], msk * 20)  # image and mask moved together
    assert (img[:, :, 1] == 1).sum() == pasted.sum()
    assert np.array_equal(image[:, :, 1], 0 * image[:, :, 1])  # the input arrays are left alone


def test_donor_is_another_sample_drawn_from_the_seed_alone():
    aug = Augmenter((32, 32), paste=(5,), paste_prob=0.5)
    keys = [(epoch, i) for epoch in range(20) for i in range(10)]
    draws = [aug.donor(0, epoch, i, 10) for epoch, i in keys]
    assert draws == [aug.donor(0, epoch, i, 10) for epoch, i in keys]
    taken = [(i, d) for (_, i), d in zip(keys, draws) if d is not None]
    assert 60 < len(taken) < 140  # about paste_prob of the samples
    assert all(0 <= d < 10 and d != i for i, d in taken) and len({d for _, d in taken}) == 10
    assert Augmenter((32, 32)).donor(0, 1, 3, 10) is None  # no paste classes: no draw
    assert Augmenter((32, 32), paste=(5,), paste_prob=1.0).donor(0, 1, 0, 1) is None  # no other sample


def test_cutmix_puts_one_rectangle_of_the_donor_over_the_sample():
    aug = Augmenter((48, 64), scale=(1.0, 1.0), hflip=0.0, cutmix=1.0)
    image, mask = _sample()
    donor_mask = (mask + 1) % 11  # differs from the sample everywhere
    donor_image = np.stack([donor_mask * 20, donor_mask * 0 + 1, donor_mask * 0], axis=2).astype(np.uint8)
    shares = []
    for sample in range(30):
        img, msk = aug.paste_over(image, mask, donor_image, donor_mask, draw=(0, 4, sample))
        rows, cols = np.nonzero(msk != mask)
        box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        assert np.array_equal(msk[box], donor_mask[box]) and (msk != mask).sum() == msk[box].size  # one rectangle
        assert np.array_equal(img[:, :, 0], msk * 20)  # image and mask moved together
        assert abs(msk[box].shape[0] / msk[box].shape[1] - 48 / 64) < 0.1  # at the crop's aspect
        shares.append(msk[box].size / msk.size)
        again = aug.paste_over(image, mask, donor_image, donor_mask, draw=(0, 4, sample))[1]
        assert np.array_equal(again, msk)  # drawn from (seed, epoch, sample) alone
    assert 0.23 < min(shares) and max(shares) < 0.52 and max(shares) - min(shares) > 0.1
    assert len({aug.box((48, 64), (0, 4, s)).argmax() for s in range(30)}) > 10  # anywhere in the crop


def test_paste_and_cutmix_are_not_combined():
    import pytest
    with pytest.raises(ValueError, match="choose one"):
        Augmenter((32, 32), paste=(5,), cutmix=0.5)
    assert Augmenter((32, 32), cutmix=0.5).donor(0, 1, 3, 10) in (None, *range(10))
