"""Dataset discovery for the three layouts, pairing by stem, splits, resizing and the cache."""
import shutil

import numpy as np
import pytest
import torch

from roadseg.config import parse_size
from roadseg.data import SampleCache, discover, load_pair, select_split, split_pairs, spread
from roadseg.data.loader import batches
from roadseg.nets import check_size
from roadseg.errors import InputError

from ..conftest import save


def _frame(seed: int, h: int = 24, w: int = 32):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 11, (h, w), dtype=np.uint8)


def make_camvid(root, counts=(("train", 3), ("val", 2))):
    for split, n in counts:
        for i in range(n):
            img, ids = _frame(i)
            save(root / split / f"f{i}.png", img)
            save(root / f"{split}annot" / f"f{i}.png", ids, "L")
    return root


def make_generic(root, n=5):
    for i in range(n):
        img, ids = _frame(i)
        save(root / "images" / f"img_{i}.png", img)
        save(root / "masks" / f"img_{i}.png", ids, "L")
    return root


def test_carla_layout(carla_dir):
    layout = discover(carla_dir)
    assert layout.format == "carla" and len(layout.splits["all"]) == 12


def test_camvid_layout(tmp_path):
    layout = discover(make_camvid(tmp_path))
    assert layout.format == "camvid" and set(layout.splits) == {"train", "val"}
    train, val = split_pairs(layout)
    assert len(train) == 3 and len(val) == 2


def test_generic_layout_and_explicit_format(tmp_path):
    make_generic(tmp_path)
    assert discover(tmp_path, "generic").format == "generic"
    with pytest.raises(InputError, match="CameraRGB"):
        discover(tmp_path, "carla")


def test_pairs_matched_by_stem_not_order(tmp_path):
    # names sort differently in the two folders: image 'b' must pair with mask 'b'
    img_a, ids_a = _frame(1)
    img_b, ids_b = _frame(2)
    save(tmp_path / "images" / "a.png", img_a)
    save(tmp_path / "images" / "b.jpg", img_b)
    save(tmp_path / "masks" / "b.png", ids_b, "L")
    save(tmp_path / "masks" / "a.png", ids_a, "L")
    pairs = discover(tmp_path).splits["all"]
    assert [(p.image.name, p.mask.name) for p in pairs] == [("a.png", "a.png"), ("b.jpg", "b.png")]


def test_seeded_split_is_deterministic_and_disjoint(carla_dir):
    layout = discover(carla_dir)
    t1, v1 = split_pairs(layout, 0.25, seed=7)
    t2, v2 = split_pairs(layout, 0.25, seed=7)
    _, v3 = split_pairs(layout, 0.25, seed=8)
    assert v1 == v2 and len(v1) == 3 and len(t1) == 9
    assert not set(t1) & set(v1)
    assert v1 != v3
    assert select_split(layout, "val", 0.25, 7) == v1
    assert len(select_split(layout, "all")) == 12
    with pytest.raises(InputError, match="no 'test' split"):
        select_split(layout, "test")


def test_load_pair_resizes_image_and_mask(carla_dir):
    pair = discover(carla_dir).splits["all"][0]
    image, mask = load_pair(pair, (32, 48))
    assert image.shape == (32, 48, 3) and mask.shape == (32, 48)
    _, full = load_pair(pair, (32, 48), mask_size=None)
    assert full.shape == (120, 160)
    assert set(np.unique(mask)) <= set(np.unique(full))  # nearest never invents ids


def test_cache_batches(carla_dir):
    pairs = discover(carla_dir).splits["all"][:4]
    cache = SampleCache.load(pairs, (32, 48), num_classes=23)
    images, masks = next(batches(cache, torch.tensor([2, 0]), 2))
    assert images.shape == (2, 3, 32, 48) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert masks.shape == (2, 32, 48) and masks.dtype == torch.int64


def test_sizes():
    assert parse_size("96x128") == (96, 128)
    with pytest.raises(InputError):
        parse_size("96by128")
    with pytest.raises(InputError, match="not divisible by 16"):
        check_size((100, 128))


def test_unmatched_files(tmp_path):
    make_generic(tmp_path)
    (tmp_path / "masks" / "img_2.png").unlink()
    with pytest.raises(InputError, match=r"img_2\.png: has no mask"):
        discover(tmp_path)
    make_generic(tmp_path)
    (tmp_path / "images" / "img_3.png").unlink()
    with pytest.raises(InputError, match=r"masks/img_3\.png: has no image"):
        discover(tmp_path)


def test_empty_and_missing(tmp_path):
    with pytest.raises(InputError, match="not found"):
        discover(tmp_path / "nope")
    (tmp_path / "CameraRGB").mkdir()
    (tmp_path / "CameraMask").mkdir()
    with pytest.raises(InputError, match="no image/mask pairs"):
        discover(tmp_path)
    shutil.rmtree(tmp_path / "CameraMask")
    with pytest.raises(InputError, match="CameraMask: folder not found"):
        discover(tmp_path, "carla")


def test_sample_cache_keeps_what_fits_and_decodes_the_rest(carla_dir):
    """Issue 13, item 9: `cache_bytes` bounds the frames held in memory; the others are decoded on use,
    identical to the cached ones; id counts and checks cover every frame."""
    pairs = split_pairs(discover(carla_dir), 0.0, 0)[0]
    full = SampleCache.load(pairs, (32, 48))
    part = SampleCache.load(pairs, (32, 48), cache_bytes=2 * 32 * 48 * 4 + 5)
    none = SampleCache.load(pairs, (32, 48), cache_bytes=0)
    assert (full.cached, part.cached, none.cached) == (len(pairs), 2, 0)
    for i in range(len(pairs)):
        for cache in (part, none):
            image, mask = cache.sample(i)
            assert np.array_equal(image, full.images[i].numpy()) and np.array_equal(mask, full.masks[i].numpy())
    assert np.array_equal(none.counts, full.counts) and none.ids() == full.ids()
    assert none.counts.sum() == len(pairs) * 32 * 48
    with pytest.raises(InputError, match="outside 0..2"):
        none.check_ids(3, None)


def test_train_on_train_and_val_trains_on_both_and_still_monitors_val(carla_dir, tmp_path):
    layout = discover(carla_dir)
    train, val = split_pairs(layout, 0.25, seed=7)
    both, monitored = split_pairs(layout, 0.25, seed=7, train_on="train+val")
    assert monitored == val and set(both) == set(train) | set(val) and len(both) == 12
    for split in ("train", "val"):  # a layout with its own splits (CamVid's folders)
        for i in range(2):
            img, ids = _frame(i + (10 if split == "val" else 0))
            save(tmp_path / split / f"{split}{i}.png", img)
            save(tmp_path / f"{split}annot" / f"{split}{i}.png", ids, "L")
    own = discover(tmp_path, "camvid")
    both, monitored = split_pairs(own, train_on="train+val")
    assert [p.stem for p in both] == ["train0", "train1", "val0", "val1"] and [p.stem for p in monitored] == ["val0", "val1"]


def test_spread_picks_evenly_from_the_first():
    assert spread(367, 32) == list(range(0, 367, 11))[:32] and len(spread(367, 32)) == 32
    assert spread(10, 32) == list(range(10)) and spread(64, 4) == [0, 16, 32, 48] and spread(0, 4) == []
