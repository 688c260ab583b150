"""The shipped CamVid models load by name, say what they are, and segment real CamVid frames."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import roadseg
from roadseg.cli import main

CAMVID = Path(__file__).resolve().parents[3] / "shared" / "data" / "camvid"


SHIPPED = {"camvid": ("2 x resunet", "352x480"), "camvid-fast": ("fastunet", "288x384"), "camvid-unet": ("unet", "288x384")}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_loads_by_name_with_its_card(name, capsys):
    assert main(["info", name]) == 0
    out = capsys.readouterr().out
    assert "research / non-commercial use only" in out and "cpu_hours" in out and "val_full_res" in out
    arch, size = SHIPPED[name]
    assert "Pole" in out and size in out and f"network      {arch}" in out


def test_models_lists_the_zoo(capsys):
    assert main(["models"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:3] == ["name", "network", "params"]
    names = {row.split()[0]: row for row in rows[1:]}
    assert set(SHIPPED) <= set(names)
    assert all("research / non-commercial" in names[n] and SHIPPED[n][0] in names[n] for n in SHIPPED)


@pytest.mark.skipif(not CAMVID.is_dir(), reason="CamVid is not beside this checkout (../shared/data/camvid)")
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_segments_camvid_val_frames(name):
    predictor = roadseg.load(name)
    accs = []
    for name in sorted((CAMVID / "val").iterdir())[:3]:
        frame = np.asarray(Image.open(name).convert("RGB"))
        truth = np.asarray(Image.open(CAMVID / "valannot" / name.name))
        pred = predictor.predict(frame)
        assert pred.shape == truth.shape == (360, 480)
        keep = truth != 11
        accs.append((pred[keep] == truth[keep]).mean())
    assert np.mean(accs) > 0.8
