"""Prediction: outputs at each input's own resolution, colour and overlay files, comparison figures."""
import numpy as np
from PIL import Image

from roadseg.cli import main
from roadseg.inference.predictor import Predictor

from ..conftest import save


def test_predict_files_folders_globs(trained, carla_dir, tmp_path):
    odd = save(tmp_path / "in" / "odd.png", np.zeros((50, 70, 3), np.uint8))
    out = tmp_path / "out"
    args = ["predict", "--model", str(trained / "best.pt"), "--out", str(out), "--overlay",
            str(carla_dir / "CameraRGB" / "000001.png"), str(odd.parent), str(carla_dir / "CameraRGB" / "00000[23].png")]
    assert main(args) == 0
    ids = Image.open(out / "odd.png")
    assert ids.mode == "L" and ids.size == (70, 50)
    assert Image.open(out / "000001.png").size == (160, 120)
    assert np.asarray(Image.open(out / "000001.png")).max() < 23
    for stem in ("000001", "000002", "000003", "odd"):
        assert Image.open(out / f"{stem}_color.png").mode == "RGB"
        assert (out / f"{stem}_overlay.png").exists()


def test_compare_figures(trained, carla_dir, tmp_path):
    assert main(["predict", "--model", str(trained / "best.pt"), "--out", str(tmp_path),
                 "--compare", str(carla_dir), "--limit", "2"]) == 0
    figs = sorted(tmp_path.glob("*_compare.png"))
    assert len(figs) == 2 and Image.open(figs[0]).size[0] > 600


def test_predictor_api(trained):
    p = Predictor.from_checkpoint(trained / "best.pt")
    frames = [np.zeros((40, 60, 3), np.uint8), np.full((64, 64, 3), 200, np.uint8)]
    masks = p.predict_batch(frames)
    assert [m.shape for m in masks] == [(40, 60), (64, 64)]
    assert np.array_equal(p.predict(frames[1]), masks[1])


def test_info(trained, capsys):
    assert main(["info", str(trained / "best.pt")]) == 0
    text = capsys.readouterr().out
    assert "parameters" in text and "Road" in text and "32x48" in text and "val_mean_iou" in text


def test_load_api_accepts_common_arrays(trained):
    import roadseg

    p = roadseg.load(trained / "best.pt")
    rgb = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    expected = p.predict(rgb)
    assert np.array_equal(p.predict(rgb / 255.0), expected)
    assert np.array_equal(p.predict(np.dstack([rgb, np.full((40, 60), 255, np.uint8)])), expected)
    assert p.predict(rgb[:, :, 0]).shape == (40, 60)
