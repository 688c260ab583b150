"""The shipped CamVid model loads by name, says what it is, and segments real CamVid frames."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import roadseg
from roadseg.cli import main

CAMVID = Path(__file__).resolve().parents[3] / "shared" / "data" / "camvid"


def test_loads_by_name_with_its_card(capsys):
    assert main(["info", "camvid"]) == 0
    out = capsys.readouterr().out
    assert "research / non-commercial use only" in out and "cpu_hours" in out and "val_full_res" in out
    assert "Pole" in out and "288x384" in out


@pytest.mark.skipif(not CAMVID.is_dir(), reason="CamVid is not beside this checkout (../shared/data/camvid)")
def test_segments_camvid_val_frames():
    predictor = roadseg.load("camvid")
    accs = []
    for name in sorted((CAMVID / "val").iterdir())[:3]:
        frame = np.asarray(Image.open(name).convert("RGB"))
        truth = np.asarray(Image.open(CAMVID / "valannot" / name.name))
        pred = predictor.predict(frame)
        assert pred.shape == truth.shape == (360, 480)
        keep = truth != 11
        accs.append((pred[keep] == truth[keep]).mean())
    assert np.mean(accs) > 0.8
