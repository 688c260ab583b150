"""Training-time augmentation with albumentations, applied identically to image and mask.

Random scale, pad-if-needed and random crop to the training crop, horizontal flip and colour
jitter; optionally a class copy-paste: the pixels of rare classes (poles, signs) from another training
sample, augmented on its own, pasted over this one, so the network sees them against more
backgrounds; or CutMix (Yun et al., ICCV 2019, for segmentation as in French et al., BMVC 2020): a
rectangle of another sample (a quarter to a half of the crop, at its aspect) pasted over this one. The
random stream is reseeded from (seed, epoch, sample) before each sample, so a resumed run, any number of
DataLoader workers and any rank see the same augmentation of a sample.

Usage::

    aug = Augmenter(crop=(192, 256), scale=(0.75, 1.5), hflip=0.5, color=0.2, fill_mask=11)
    aug.reseed(seed=0, epoch=3, sample=17)
    image, mask = aug(image_uint8_hwc, mask_uint8_hw)
    donor = aug.donor(seed=0, epoch=3, sample=17, count=367)   # None, or the sample to paste from
    image, mask = aug.paste_over(image, mask, donor_image, donor_mask, draw=(0, 3, 17))
"""
from __future__ import annotations

import numpy as np


class Augmenter:
    """An albumentations pipeline for (uint8 HxWx3 image, uint8 HxW mask) pairs."""

    def __init__(self, crop: tuple[int, int] | None, scale: tuple[float, float] = (1.0, 1.0),
                 hflip: float = 0.5, color: float = 0.0, fill_mask: int = 0,
                 paste: tuple[int, ...] = (), paste_prob: float = 0.5, cutmix: float = 0.0) -> None:
        import albumentations as A
        import cv2

        cv2.setNumThreads(0)
        steps = []
        lo, hi = scale
        if (lo, hi) != (1.0, 1.0):
            steps.append(A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), interpolation=cv2.INTER_LINEAR,
                                       mask_interpolation=cv2.INTER_NEAREST, p=1.0))
        if crop is not None:
            steps.append(A.PadIfNeeded(crop[0], crop[1], border_mode=cv2.BORDER_CONSTANT, fill=0,
                                       fill_mask=fill_mask))
            steps.append(A.RandomCrop(crop[0], crop[1]))
        if hflip > 0:
            steps.append(A.HorizontalFlip(p=hflip))
        if color > 0:
            steps.append(A.ColorJitter(brightness=color, contrast=color, saturation=color, hue=color / 4, p=0.8))
        self.pipeline = A.Compose(steps, seed=0)
        if paste and cutmix:
            raise ValueError("class copy-paste and CutMix draw the same donor: choose one")
        self.paste, self.paste_prob, self.cutmix = tuple(paste), paste_prob, cutmix

    def reseed(self, seed: int, epoch: int, sample: int = 0, *more: int) -> None:
        """Make the next draws a function of (seed, epoch, sample, *more) only."""
        self.pipeline.set_random_seed(int(np.random.SeedSequence([seed, epoch, sample, *more]).generate_state(1)[0]))

    def donor(self, seed: int, epoch: int, sample: int, count: int) -> int | None:
        """The other sample whose `paste` classes (or, with `cutmix`, a rectangle of which) go over this one,
        drawn with probability paste_prob (cutmix) from (seed, epoch, sample) alone, or None."""
        if not (self.paste or self.cutmix) or count < 2:
            return None
        rng = np.random.default_rng([seed, epoch, sample, 1])
        if rng.random() >= (self.paste_prob if self.paste else self.cutmix):
            return None
        other = int(rng.integers(count - 1))
        return other + (other >= sample)

    def paste_over(self, image: np.ndarray, mask: np.ndarray, donor_image: np.ndarray,
                   donor_mask: np.ndarray, *, draw: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """`image` and `mask` with the donor's pixels of the `paste` classes put over them (same size); with
        `cutmix`, the donor's pixels in a rectangle drawn from `draw` (seed, epoch, sample) alone."""
        if donor_mask.shape != mask.shape:
            return image, mask
        where = self.box(mask.shape, draw) if self.cutmix else np.isin(donor_mask, self.paste)
        image, mask = image.copy(), mask.copy()
        image[where], mask[where] = donor_image[where], donor_mask[where]
        return image, mask

    @staticmethod
    def box(shape: tuple[int, ...], draw: tuple[int, ...]) -> np.ndarray:
        """A boolean HxW map of one rectangle covering a quarter to a half of it, at its aspect, anywhere."""
        rng = np.random.default_rng([*draw, 2])
        h, w = shape[:2]
        side = np.sqrt(rng.uniform(0.25, 0.5))
        bh, bw = max(round(h * side), 1), max(round(w * side), 1)
        top, left = int(rng.integers(h - bh + 1)), int(rng.integers(w - bw + 1))
        where = np.zeros((h, w), bool)
        where[top:top + bh, left:left + bw] = True
        return where

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.pipeline(image=image, mask=mask)
        return out["image"], out["mask"]
