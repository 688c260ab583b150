"""The Cityscapes layout (issue 13, item 6): leftImg8bit/ + gtFine/ by split and city, label ids mapped to
the 19 train ids (255 ignored) on load; check, train, evaluate and predict --compare work on it."""
import numpy as np
import pytest

from roadseg.checkpoint import load_checkpoint
from roadseg.cli import main
from roadseg.data import discover, load_pair

from ..conftest import save


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    rng = np.random.default_rng(0)
    for split, cities in (("train", ("aachen", "bremen")), ("val", ("frankfurt",))):
        for city in cities:
            for i in range(3):
                name = f"{city}_{i:06d}_000019"
                save(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png",
                     rng.integers(0, 256, (64, 128, 3), dtype=np.uint8))
                labels = np.full((64, 128), 7, np.uint8)  # road
                labels[:20] = 23                          # sky
                labels[30:40, 10:40] = 26                  # car
                labels[-4:] = 1                            # ego vehicle: not one of the 19
                save(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", labels)
    return root


def test_label_ids_become_train_ids(cityscapes):
    layout = discover(cityscapes)
    assert layout.format == "cityscapes" and len(layout.splits["train"]) == 6 and len(layout.splits["val"]) == 3
    _, mask = load_pair(layout.splits["val"][0], None)
    assert set(np.unique(mask)) == {0, 10, 13, 255}  # road, sky, car, ignored


def test_check_train_evaluate_compare(cityscapes, tmp_path, capsys):
    assert main(["check", str(cityscapes)]) == 0
    out = capsys.readouterr().out
    assert "class table cityscapes (19 classes)" in out and "car" in out and "sky" in out
    run = tmp_path / "run"
    assert main(["train", "--data", str(cityscapes), "--out", str(run), "--epochs", "1", "--size", "32x64",
                 "--base-filters", "4", "--depth", "3", "--batch-size", "3", "--no-progress"]) == 0
    ckpt = load_checkpoint(run / "best.pt")
    assert len(ckpt["classes"]["names"]) == 19 and ckpt["classes"]["ignore_index"] == 255
    assert main(["evaluate", "--model", str(run), "--data", str(cityscapes), "--full-res"]) == 0
    assert "3 images, split val" in capsys.readouterr().out
    assert main(["predict", "--model", str(run), "--compare", str(cityscapes), "--out", str(tmp_path / "cmp")]) == 0
    assert len(list((tmp_path / "cmp").glob("*_compare.png"))) == 3
