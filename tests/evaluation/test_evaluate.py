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
    assert "mean IoU" in capsys.readouterr().out
