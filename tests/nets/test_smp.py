"""The smp extra (issue 16, item 6): segmentation_models_pytorch's architectures as roadseg networks.
Without the extra (the main suite) only the one-line refusal is tested; the rest runs in the extra's
own venv (`make test-smp`), with `--encoder-weights none` or a saved state dict: nothing is downloaded."""
from __future__ import annotations

import sys

import pytest
import torch

from roadseg import nets
from roadseg.checkpoint import build_model, load_checkpoint
from roadseg.cli import main
from roadseg.errors import InputError


def test_smp_names_are_registered_and_say_which_extra_they_need(monkeypatch):
    assert {"smp-unet", "smp-fpn", "smp-deeplabv3plus"} <= set(nets.names())
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)  # as if the extra were missing
    with pytest.raises(InputError, match=r"pip install 'roadseg\[smp\]'"):
        nets.create("smp-unet", num_classes=3)


def test_cli_trains_an_epoch_and_exports_onnx_and_a_checkpoint_needs_the_extra(tmp_path, carla_dir, monkeypatch):
    pytest.importorskip("segmentation_models_pytorch")
    pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    assert main(["train", "--data", str(carla_dir), "--out", str(run), "--arch", "smp-unet", "--encoder", "resnet18",
                 "--encoder-weights", "none", "--epochs", "1", "--batch-size", "4", "--size", "64x96",
                 "--no-progress"]) == 0
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt["model"]["arch"] == "smp-unet" and ckpt["model"]["settings"]["encoder"] == "resnet18"
    assert main(["export", "--model", str(run / "best.pt"), "--format", "onnx", str(tmp_path / "m.onnx")]) == 0
    assert (tmp_path / "m.onnx").stat().st_size > 1_000_000
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)
    with pytest.raises(InputError, match=r"roadseg\[smp\]"):
        build_model(ckpt)


def test_encoder_weights_from_a_saved_state_dict(tmp_path):
    pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(0)
    source = nets.create("smp-fpn", num_classes=4, encoder="resnet18")
    torch.save(source.encoder.state_dict(), tmp_path / "enc.pt")
    torch.manual_seed(1)
    started = nets.create("smp-unet", num_classes=4, encoder="resnet18", encoder_weights=str(tmp_path / "enc.pt"))
    a, b = source.encoder.state_dict(), started.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert started.settings["encoder_weights"] == "none"  # a rebuild takes its weights from the checkpoint
    with pytest.raises(InputError, match="does not fit the encoder"):
        nets.create("smp-unet", num_classes=4, encoder="resnet34", encoder_weights=str(tmp_path / "enc.pt"))
    with pytest.raises(InputError, match="encoder weights not found"):
        nets.create("smp-unet", num_classes=4, encoder="resnet18", encoder_weights=str(tmp_path / "none.pt"))


def test_init_and_freeze_encoder_work_on_smp_networks(tmp_path, carla_dir):
    pytest.importorskip("segmentation_models_pytorch")
    common = ["--data", str(carla_dir), "--arch", "smp-unet", "--encoder", "resnet18", "--encoder-weights", "none",
              "--epochs", "1", "--batch-size", "4", "--size", "64x96", "--no-progress"]
    assert main(["train", "--out", str(tmp_path / "a"), *common]) == 0
    assert main(["train", "--out", str(tmp_path / "b"), "--init", str(tmp_path / "a" / "best.pt"),
                 "--freeze-encoder", "1", *common]) == 0
    a = load_checkpoint(tmp_path / "a" / "best.pt")["model"]["state_dict"]
    b = load_checkpoint(tmp_path / "b" / "best.pt")["model"]["state_dict"]
    frozen = [k for k in a if k.startswith("model.encoder.") and k.endswith(".weight")]
    assert frozen and all(torch.equal(a[k], b[k]) for k in frozen)
    assert not torch.equal(a["classifier.0.weight"], b["classifier.0.weight"])
