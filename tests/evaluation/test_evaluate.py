"""Evaluation: scores from the real checkpoint on real files, at model size and full resolution."""
import json

import numpy as np

from roadseg.cli import main
from roadseg.evaluation.evaluate import evaluate, format_report


def test_report_keys_and_ranges(trained, carla_dir):
    r = evaluate(trained / "best.pt", carla_dir, split="val")
    for key in ("pixel_accuracy", "mean_iou", "per_class_iou", "mean_class_accuracy",
                "frequency_weighted_iou", "confusion_matrix", "num_images"):
        assert key in r
    assert r["num_images"] == 2  # 20% of 12 frames, same seed as training
    assert 0 <= r["pixel_accuracy"] <= 1 and 0 <= r["mean_iou"] <= 1
    cm = np.asarray(r["confusion_matrix"])
    assert cm.shape == (23, 23) and cm.sum() == 2 * 32 * 48
    assert np.isclose(np.trace(cm) / cm.sum(), r["pixel_accuracy"])
    assert "Road" in r["per_class_iou"] and "pixel accuracy" in format_report(r)


def test_full_res_counts_every_original_pixel(trained, carla_dir):
    r = evaluate(trained / "best.pt", carla_dir, split="all", full_res=True)
    assert np.asarray(r["confusion_matrix"]).sum() == 12 * 120 * 160


def test_cli_writes_json(trained, carla_dir, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["evaluate", "--model", str(trained / "best.pt"), "--data", str(carla_dir),
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data["per_class_iou"]) >= {"Road", "Sky"}
    assert data["trained_on_split"] is False  # its val split, drawn as at training, is held out
    assert "mean IoU" in capsys.readouterr().out


def test_scores_say_which_split_of_which_data(trained, carla_dir, copy_carla, capsys):
    """Issue 14, item 11: the seeded split is named, and a folder the model never saw is said to be one."""
    assert main(["evaluate", "--model", str(trained / "best.pt"), "--data", str(carla_dir)]) == 0
    out = capsys.readouterr().out
    assert "note: the seeded val split (val fraction 0.2, seed 0), drawn as at training" in out
    assert "every frame here is unseen" not in out
    other = copy_carla()
    assert main(["evaluate", "--model", str(trained / "best.pt"), "--data", str(other)]) == 0
    assert "every frame here is unseen: --split all scores them all" in capsys.readouterr().out


def test_info_names_the_epoch_and_the_size_of_its_metrics(trained, capsys):
    assert main(["info", str(trained / "best.pt")]) == 0
    out = capsys.readouterr().out
    assert "of 2 planned" in out and "at the network's 32x48" in out


def test_val_of_a_train_plus_val_model_is_said_not_to_be_held_out(carla_dir):
    from roadseg.data import discover
    from roadseg.evaluation.evaluate import split_note, trained_on_split
    layout = discover(carla_dir)
    trained = {"root": str(carla_dir), "val_fraction": 0.2, "seed": 0, "train_on": "train+val"}
    assert "not a held-out score" in split_note(layout, "val", trained)
    assert "not a held-out score" not in split_note(layout, "val", {**trained, "train_on": "train"})
    assert split_note(layout, "val", {**trained, "root": "/elsewhere"}).endswith("--split all scores them all")
    assert trained_on_split(layout, "val", trained) and trained_on_split(layout, "train", trained)
    assert not trained_on_split(layout, "val", {**trained, "train_on": "train"})
    assert not trained_on_split(layout, "val", {**trained, "root": "/elsewhere"})
