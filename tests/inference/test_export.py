"""Export: slim half-precision checkpoints (the averaged or the stepped weights) and ONNX that matches PyTorch
within 1e-4."""
import numpy as np
import pytest
import onnxruntime as ort
import torch
from PIL import Image

from roadseg.checkpoint import build_model, load_checkpoint, save_checkpoint
from roadseg.cli import main
from roadseg.inference.predictor import Predictor
from roadseg.training import train

from ..conftest import tiny_config


def test_half_pt_is_smaller_and_predicts_the_same(trained, tmp_path, capsys):
    out = tmp_path / "slim.pt"
    assert main(["export", "--model", str(trained / "best.pt"), "--format", "pt", "--half", out.as_posix(),
                 "--card", "license=research use"]) == 0
    slim = load_checkpoint(out)
    assert "optimizer" not in slim and slim["card"]["license"] == "research use"
    assert all(v.dtype == torch.float16 for v in slim["model"]["state_dict"].values() if v.is_floating_point())
    assert out.stat().st_size < (trained / "best.pt").stat().st_size
    frame = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    a = Predictor.from_checkpoint(trained / "best.pt").predict(frame)
    b = Predictor.from_checkpoint(out).predict(frame)
    assert (a == b).mean() > 0.99
    assert main(["info", str(out)]) == 0 and "research use" in capsys.readouterr().out


def test_onnx_matches_torch_with_dynamic_shapes(trained, tmp_path):
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(trained / "best.pt"), "--format", "onnx", str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    model = build_model(load_checkpoint(trained / "best.pt"))
    for shape in [(1, 3, 32, 48), (3, 3, 64, 32)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"images": x.numpy()})[0]
        assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-4


def test_predict_with_onnx_backend(trained, carla_dir, tmp_path):
    frame = str(carla_dir / "CameraRGB" / "000004.png")
    assert main(["predict", "--model", str(trained / "best.pt"), "--out", str(tmp_path / "t"), frame]) == 0
    assert main(["predict", "--model", str(trained / "best.pt"), "--backend", "onnx", "--out", str(tmp_path / "o"),
                 frame]) == 0
    a = np.asarray(Image.open(tmp_path / "t" / "000004.png"))
    b = np.asarray(Image.open(tmp_path / "o" / "000004.png"))
    assert (a == b).mean() > 0.999


def test_onnx_files_carry_metadata_and_int8_stays_close(trained, carla_dir, tmp_path, capsys, caplog):
    from roadseg.evaluation.evaluate import evaluate

    fp32, int8 = tmp_path / "m.onnx", tmp_path / "m8.onnx"
    assert main(["export", "--model", str(trained / "best.pt"), "--format", "onnx", str(fp32)]) == 0
    assert main(["export", "--model", str(trained / "best.pt"), "--format", "onnx-int8", "--calibration",
                 str(carla_dir), "--calibration-frames", "8", str(int8)]) == 0
    assert not [r.message for r in caplog.records if "pre-processing" in r.message]  # onnxruntime's advice is taken
    import onnx
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    ref = evaluate(trained / "best.pt", carla_dir, split="all")
    a = evaluate(fp32, carla_dir, split="all")
    b = evaluate(int8, carla_dir, split="all")
    assert a["num_images"] == b["num_images"] == 12
    assert abs(a["pixel_accuracy"] - ref["pixel_accuracy"]) < 1e-3
    assert abs(b["pixel_accuracy"] - ref["pixel_accuracy"]) < 0.05
    assert main(["predict", "--model", str(int8), "--out", str(tmp_path / "p"),
                 str(carla_dir / "CameraRGB" / "000001.png")]) == 0
    assert Image.open(tmp_path / "p" / "000001.png").size == (160, 120)
    assert main(["export", "--model", str(trained / "best.pt"), "--format", "onnx-int8", str(int8)]) == 2
    assert "--calibration" in capsys.readouterr().err


def test_openvino_backend_matches_torch_and_runs_int8(trained, carla_dir, tmp_path):
    pytest.importorskip("openvino")
    from roadseg.data import SampleCache, discover, split_pairs
    from roadseg.evaluation.evaluate import evaluate

    ckpt = trained / "best.pt"
    torch_p, ov_p = Predictor.from_checkpoint(ckpt), Predictor.from_checkpoint(ckpt, backend="openvino")
    frames = SampleCache.load(split_pairs(discover(carla_dir), 0.0, 0)[0][:5], torch_p.size).images.numpy()
    for batch in (frames[:1], frames):  # each batch shape compiles once
        expected, got = torch_p.logits(batch), ov_p.logits(batch)
        assert got.shape == expected.shape and (got - expected).abs().max() <= 1e-4
    int8 = tmp_path / "m8.onnx"
    assert main(["export", "--model", str(ckpt), "--format", "onnx-int8", "--calibration", str(carla_dir),
                 "--calibration-frames", "8", str(int8)]) == 0
    ref = evaluate(ckpt, carla_dir, split="all")
    q = evaluate(int8, carla_dir, split="all", backend="openvino")
    assert q["num_images"] == 12 and abs(q["pixel_accuracy"] - ref["pixel_accuracy"]) < 0.05
    frame = str(carla_dir / "CameraRGB" / "000004.png")
    assert main(["predict", "--model", str(ckpt), "--backend", "openvino", "--out", str(tmp_path / "o"), frame]) == 0
    assert Image.open(tmp_path / "o" / "000004.png").size == (160, 120)


def test_a_missing_extra_says_what_to_install(trained, tmp_path, monkeypatch, capsys):
    """Issue 14, item 25: no traceback, the pip command."""
    import sys
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    assert main(["export", "--model", str(trained / "best.pt"), "--format", "onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs the onnx package" in err and "pip install 'roadseg[onnx]'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_info_of_a_checkpoint_with_empty_settings(trained, tmp_path, capsys):
    ckpt = load_checkpoint(trained / "best.pt")
    torch.save({**ckpt, "model": {**ckpt["model"], "settings": {}}}, tmp_path / "bare.pt")
    assert main(["info", str(tmp_path / "bare.pt")]) == 0
    assert "network      unet" in capsys.readouterr().out


def test_pt_export_can_set_the_input_size(trained, tmp_path, capsys):
    out = tmp_path / "small.pt"
    assert main(["export", "--model", str(trained / "best.pt"), "--format", "pt", "--size", "16x24", str(out)]) == 0
    assert load_checkpoint(out)["input"]["size"] == [16, 24]
    assert main(["export", "--model", str(trained / "best.pt"), "--format", "pt", "--size", "18x24",
                 str(tmp_path / "bad.pt")]) == 2
    assert "not divisible by 4" in capsys.readouterr().err and not (tmp_path / "bad.pt").exists()


def test_training_weights_export_takes_the_stepped_weights_not_their_average(trained, carla_dir, tmp_path, capsys):
    run = train(tiny_config(carla_dir, tmp_path / "ema", epochs=1, ema=0.9, batch_norm=True))
    last = load_checkpoint(run / "last.pt")
    out = tmp_path / "stepped.pt"
    assert main(["export", "--model", str(run / "last.pt"), "--format", "pt", "--training-weights", str(out)]) == 0
    exported = load_checkpoint(out)
    state = exported["model"]["state_dict"]
    assert "optimizer" in exported["card"]["weights"] and "optimizer" not in exported
    assert all(torch.equal(state[k], v) for k, v in last["training_weights"].items())
    assert any(not torch.equal(state[k], v) for k, v in last["model"]["state_dict"].items() if v.is_floating_point())
    assert main(["export", "--model", str(trained / "best.pt"), "--format", "pt", "--training-weights",
                 str(tmp_path / "none.pt")]) == 2
    assert "holds no training weights" in capsys.readouterr().err and not (tmp_path / "none.pt").exists()


def test_several_models_export_as_one_ensemble_of_their_mean_probabilities(trained, carla_dir, tmp_path, capsys):
    other = train(tiny_config(carla_dir, tmp_path / "seed1", epochs=1, seed=1))
    a, b, out = trained / "best.pt", other / "best.pt", tmp_path / "ens.pt"
    assert main(["export", "--model", str(a), "--model", str(b), "--format", "pt", "--half", str(out)]) == 0
    ens = load_checkpoint(out)
    assert ens["model"]["arch"] == "ensemble" and "2 networks (unet, unet)" in ens["card"]["ensemble"]
    frame = np.asarray(Image.open(carla_dir / "CameraRGB" / "000004.png").convert("RGB"))
    mean = (Predictor.from_checkpoint(a).probabilities(frame) + Predictor.from_checkpoint(b).probabilities(frame)) / 2
    assert np.abs(Predictor.from_checkpoint(out).probabilities(frame) - mean).max() < 5e-3  # fp16 weights
    logits = tmp_path / "logits.pt"
    assert main(["export", "--model", str(a), "--model", str(b), "--format", "pt", "--average", "logits",
                 str(logits)]) == 0
    assert "mean logits of 2 networks" in load_checkpoint(logits)["card"]["ensemble"]
    mean = (Predictor.from_checkpoint(a).frame_logits(frame) + Predictor.from_checkpoint(b).frame_logits(frame)) / 2
    assert (Predictor.from_checkpoint(logits).frame_logits(frame) - mean).abs().max() < 1e-4
    assert main(["export", "--model", str(a), "--format", "pt", "--average", "logits", str(tmp_path / "x.pt")]) == 2
    assert "give --model twice or more" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()
    three = tmp_path / "three.pt"  # an ensemble as a member gives its members
    assert main(["export", "--model", str(out), "--model", str(a), "--format", "pt", str(three)]) == 0
    assert [m["arch"] for m in load_checkpoint(three)["model"]["settings"]["members"]] == ["unet"] * 3
    assert main(["info", str(out)]) == 0 and "ensemble" in capsys.readouterr().out


def test_an_ensemble_of_models_with_other_classes_is_refused(trained, tmp_path, capsys):
    ckpt = load_checkpoint(trained / "best.pt")
    ckpt["classes"] = {**ckpt["classes"], "names": ["Other"] + ckpt["classes"]["names"][1:]}
    save_checkpoint(ckpt, tmp_path / "renamed.pt")
    assert main(["export", "--model", str(trained / "best.pt"), "--model", str(tmp_path / "renamed.pt"),
                 "--format", "pt", str(tmp_path / "ens.pt")]) == 2
    err = capsys.readouterr().err
    assert "renamed.pt" in err and "predicts other classes" in err and not (tmp_path / "ens.pt").exists()


def test_an_ensemble_is_not_logit_adjusted_after_it_is_built(trained, tmp_path, capsys):
    ens = tmp_path / "ens.pt"
    best = str(trained / "best.pt")
    assert main(["export", "--model", best, "--model", best, "--format", "pt", str(ens)]) == 0
    assert main(["export", "--model", str(ens), "--format", "pt", "--logit-adjustment", "0.5",
                 str(tmp_path / "adjusted.pt")]) == 2
    assert "no classifier bias" in capsys.readouterr().err and not (tmp_path / "adjusted.pt").exists()
