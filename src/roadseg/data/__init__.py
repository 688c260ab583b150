"""Data, from files on disk to tensors: safe image and mask decoding (`imageio`), dataset layouts,
pairing and splits (`layouts`), resizing, the sample cache and the one preprocessing step
(`samples`), batches and DataLoader workers (`loader`), augmentation (`augment`), class weights
(`class_weights`), dataset checks (`check`) and synthetic CARLA-format scenes (`synth`). Nothing
here knows about networks or training.

Usage::

    from roadseg.data import discover, split_pairs, SampleCache
    layout = discover("data", "auto")
    train_pairs, val_pairs = split_pairs(layout, val_fraction=0.2, seed=0)
    cache = SampleCache.load(train_pairs, size=(96, 128), num_classes=23)
"""
from .layouts import (FORMATS, LAYOUT_FOLDERS, Layout, Pair, discover, pair_folder, raise_first, scan_pairs,
                      select_split, select_trained_split, split_pairs)
from .samples import SampleCache, check_ids, load_pair, resize_image, resize_mask, spread, to_tensor

__all__ = ["FORMATS", "LAYOUT_FOLDERS", "Layout", "Pair", "SampleCache", "check_ids", "discover", "load_pair",
           "pair_folder", "raise_first", "resize_image", "resize_mask", "scan_pairs", "select_split",
           "select_trained_split", "split_pairs", "spread", "to_tensor"]
