"""Prediction: outputs at each input's own resolution, colour and overlay files, comparison figures."""
import numpy as np
import pytest
from PIL import Image

from roadseg.cli import main
from roadseg.errors import InputError
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


def test_compare_figures_show_the_frame_at_its_own_resolution(trained, carla_dir, tmp_path, monkeypatch):
    """Issue 13, item 3: not the blurry 32x48 network input."""
    from roadseg.evaluation import compare
    shapes = []
    real = compare.compare_figure
    monkeypatch.setattr(compare, "compare_figure",
                        lambda image, truth, pred, *a, **k: shapes.append((image.shape, truth.shape, pred.shape))
                        or real(image, truth, pred, *a, **k))
    assert main(["predict", "--model", str(trained / "best.pt"), "--out", str(tmp_path), "--compare", str(carla_dir),
                 "--limit", "1"]) == 0
    assert shapes == [((120, 160, 3), (120, 160), (120, 160))]


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


def test_native_size_pads_to_the_multiple_and_crops_back(trained):
    import torch
    from roadseg.checkpoint import build_model, load_checkpoint
    p = Predictor.from_checkpoint(trained / "best.pt", "cpu", size="native", winograd=False)
    frame = np.random.default_rng(2).integers(0, 256, (41, 62, 3), dtype=np.uint8)
    ids = p.predict(frame)
    assert ids.shape == (41, 62)
    padded = np.pad(frame, ((0, 3), (0, 2), (0, 0)), mode="edge")  # to multiples of 4
    with torch.no_grad():
        logits = build_model(load_checkpoint(trained / "best.pt"))(
            torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255)
    assert (logits.argmax(1)[0, :41, :62].numpy() == ids).mean() > 0.999


def test_flip_tta_averages_the_mirrored_logits(trained):
    plain = Predictor.from_checkpoint(trained / "best.pt", "cpu", winograd=False)
    tta = Predictor.from_checkpoint(trained / "best.pt", "cpu", winograd=False, tta=True)
    frames = np.random.default_rng(3).integers(0, 256, (2, *plain.size, 3), dtype=np.uint8)
    expected = (plain.logits(frames) + plain.logits(frames[:, :, ::-1].copy()).flip(3)) / 2
    assert np.allclose(tta.logits(frames).numpy(), expected.numpy(), atol=1e-5)


def test_multi_scale_tta_averages_each_scale_and_its_mirror(trained):
    from torch.nn import functional as F
    plain = Predictor.from_checkpoint(trained / "best.pt", "cpu", winograd=False)
    ms = Predictor.from_checkpoint(trained / "best.pt", "cpu", winograd=False, tta=(1.0, 1.5))
    frames = np.random.default_rng(5).integers(0, 256, (2, *plain.size, 3), dtype=np.uint8)
    x = plain.preprocess.tensor(frames)
    big = [round(d * 1.5 / plain.multiple) * plain.multiple for d in plain.size]
    xb = F.interpolate(x, size=big, mode="bilinear", align_corners=False)
    flip = (plain.engine(x) + plain.engine(x.flip(3)).flip(3)) / 2
    flip_big = F.interpolate((plain.engine(xb) + plain.engine(xb.flip(3)).flip(3)) / 2, size=plain.size,
                             mode="bilinear", align_corners=False)
    assert np.allclose(ms.logits(frames).numpy(), ((flip + flip_big) / 2).numpy(), atol=1e-5)
    assert Predictor.from_checkpoint(trained / "best.pt", "cpu", winograd=False, tta=[1]).tta == (1.0,)
    with pytest.raises(InputError, match="out of range"):
        Predictor.from_checkpoint(trained / "best.pt", "cpu", winograd=False, tta=(0.0, 1.0))


@pytest.mark.parametrize("tta, scales", [(False, ()), ((), ()), (True, (1.0,)), ([1], (1.0,)),
                                         ((0.8, 1.2), (0.8, 1.2))])
def test_tta_scales_are_the_same_when_passed_back_in(tta, scales):
    from roadseg.inference.predictor import tta_scales
    assert tta_scales(tta) == scales
    assert tta_scales(tta_scales(tta)) == scales


def test_tiles_cover_the_frame_and_one_tile_equals_native(trained):
    native = Predictor.from_checkpoint(trained / "best.pt", "cpu", size="native", winograd=False)
    frame = np.random.default_rng(4).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    whole = Predictor.from_checkpoint(trained / "best.pt", "cpu", winograd=False, tile=(120, 160))
    assert np.allclose(whole.frame_logits(frame).numpy(), native.frame_logits(frame).numpy(), atol=1e-5)
    tiled = Predictor.from_checkpoint(trained / "best.pt", "cpu", winograd=False, tile=(32, 48))
    assert tiled.predict(frame).shape == (120, 160) and tiled.predict(frame[:20, :30]).shape == (20, 30)


def test_evaluate_and_predict_take_the_inference_options(trained, carla_dir, tmp_path, capsys):
    for extra in (["--size", "native"], ["--tta"], ["--tile", "32x48"], ["--tta-scales", "0.75", "1"]):
        assert main(["evaluate", "--model", str(trained / "best.pt"), "--data", str(carla_dir), *extra]) == 0
        out = capsys.readouterr().out
        assert "mean IoU" in out and ("--tta-scales" not in extra or "flip TTA at scales 0.75 1" in out)
    assert main(["predict", "--model", str(trained / "best.pt"), str(carla_dir / "CameraRGB" / "000001.png"),
                 "--out", str(tmp_path), "--tta", "--size", "native"]) == 0
    assert Image.open(tmp_path / "000001.png").size == (160, 120)


def test_probabilities_and_confidence_maps(trained, carla_dir, tmp_path):
    """Issue 13, item 4."""
    p = Predictor.from_checkpoint(trained / "best.pt", "cpu", winograd=False)
    frame = np.asarray(Image.open(carla_dir / "CameraRGB" / "000001.png").convert("RGB"))
    probs = p.probabilities(frame)
    assert probs.shape == (120, 160, 23) and probs.dtype == np.float32
    assert np.allclose(probs.sum(2), 1, atol=1e-4) and (probs.argmax(2) == p.predict(frame)).mean() > 0.999
    assert main(["predict", "--model", str(trained / "best.pt"), str(carla_dir / "CameraRGB" / "000001.png"),
                 "--out", str(tmp_path), "--probs", "--no-winograd"]) == 0
    conf = np.asarray(Image.open(tmp_path / "000001_conf.png"))
    assert conf.dtype == np.uint16 and conf.shape == (120, 160)
    assert abs(conf / 65535 - probs.max(2)).max() < 1e-3


def test_overlay_alpha_and_legend(trained, carla_dir, tmp_path):
    frame = str(carla_dir / "CameraRGB" / "000002.png")
    for name, extra in (("a", ["--alpha", "0"]), ("b", ["--alpha", "1"]), ("c", ["--legend"])):
        assert main(["predict", "--model", str(trained / "best.pt"), frame, "--out", str(tmp_path / name),
                     "--overlay", *extra]) == 0
    original = np.asarray(Image.open(frame).convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / "000002_overlay.png")), original)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b" / "000002_overlay.png")),
                          np.asarray(Image.open(tmp_path / "b" / "000002_color.png")))
    legend = np.asarray(Image.open(tmp_path / "c" / "000002_overlay.png"))
    plain = np.asarray(Image.open(tmp_path / "c" / "000002_color.png")) * 0.5 + original * 0.5
    assert (np.abs(legend[:10, :10].astype(float) - plain[:10, :10]) > 10).any()  # the legend box
    assert np.abs(legend[-20:, -20:].astype(float) - plain[-20:, -20:]).max() <= 1  # the rest as it was


def test_skip_errors_goes_on_and_exits_1(trained, carla_dir, tmp_path, capsys):
    """Issue 13, item 5: each unreadable input in one line, the rest predicted, exit 1."""
    bad = tmp_path / "in" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = carla_dir / "CameraRGB" / "000003.png"
    args = ["predict", "--model", str(trained / "best.pt"), str(bad), str(good), "--out"]
    assert main([*args, str(tmp_path / "strict")]) == 2 and not (tmp_path / "strict").exists()
    capsys.readouterr()
    assert main([*args, str(tmp_path / "lenient"), "--skip-errors"]) == 1
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.png" in err and "skipped 1 unreadable input" in err
    assert (tmp_path / "lenient" / "000003.png").exists() and not (tmp_path / "lenient" / "broken.png").exists()


def test_precision_bf16_close_to_fp32_and_auto_follows_the_card(trained, carla_dir, tmp_path, monkeypatch):
    """Issue 12, item 3: --precision fp32|bf16|auto; auto is bf16 only where the CPU has it natively and
    the model card records the bf16 check."""
    import torch

    import roadseg.inference.engines as engines
    from roadseg.checkpoint import load_checkpoint, save_checkpoint
    frames = np.random.default_rng(0).integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)
    fp32 = Predictor.from_checkpoint(trained, "cpu", precision="fp32")
    bf16 = Predictor.from_checkpoint(trained, "cpu", precision="bf16")
    assert bf16.engine.name == "torch" and bf16.engine.precision == "bf16"
    a, b = fp32.logits(frames), bf16.logits(frames)
    assert b.dtype == torch.float32 and (a - b).abs().max() <= 0.05 * a.abs().max()
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.95

    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: True)
    assert engines.resolve_precision("auto", torch.device("cpu"), {}) == "fp32"
    assert engines.resolve_precision("auto", torch.device("cpu"), {"precision": "bf16 (val mIoU 0.1 points below fp32)"}) == "bf16"
    ckpt = load_checkpoint(trained)
    ckpt["card"] = {**ckpt.get("card", {}), "precision": "bf16"}
    save_checkpoint(ckpt, tmp_path / "checked.pt")
    assert Predictor.from_checkpoint(tmp_path / "checked.pt", "cpu").engine.precision == "bf16"
    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: False)
    assert engines.resolve_precision("auto", torch.device("cpu"), {"precision": "bf16"}) == "fp32"
    assert main(["evaluate", "--model", str(trained), "--data", str(carla_dir), "--precision", "bf16"]) == 0
