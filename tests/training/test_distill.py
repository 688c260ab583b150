"""Knowledge distillation (--distill): the loss term, a run that learns from a teacher on every training
batch (never on validation), and teachers that do not fit the run refused in one line."""
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from roadseg.checkpoint import class_table_of, load_checkpoint
from roadseg.cli import main
from roadseg.errors import InputError
from roadseg.training import distill, run
from roadseg.training.distill import distillation_loss


TINY_FLAGS = ["--size", "32x48", "--base-filters", "4", "--depth", "3", "--batch-size", "4", "--no-progress"]


def test_the_term_is_the_kl_divergence_over_labelled_pixels_scaled_by_t_squared():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 3, 4), torch.randn(2, 5, 3, 4)
    target = torch.randint(0, 5, (2, 3, 4))
    target[0, 0, :] = 9  # ignored pixels
    keep = (target != 9).reshape(-1)
    s = student.permute(0, 2, 3, 1).reshape(-1, 5)[keep]
    t = teacher.permute(0, 2, 3, 1).reshape(-1, 5)[keep]
    for temperature in (1.0, 2.0):
        p = (t / temperature).softmax(1)
        by_hand = (p * (p.log() - (s / temperature).log_softmax(1))).sum(1).mean() * temperature ** 2
        got = distillation_loss(student, teacher, target, temperature, ignore_index=9)
        assert math.isclose(float(got), float(by_hand), rel_tol=1e-5)
    changed = student.clone()
    changed[0, :, 0, :] += 5  # only ignored pixels change
    assert torch.equal(distillation_loss(changed, teacher, target, 1.0, 9), distillation_loss(student, teacher, target, 1.0, 9))
    assert float(distillation_loss(teacher, teacher, target, 1.0, 9)) < 1e-6
    assert float(distillation_loss(student, teacher, torch.full_like(target, 9), 1.0, 9)) == 0.0


def test_the_gradient_pulls_the_network_toward_the_teacher():
    teacher = torch.tensor([[3.0, 0.0, -3.0]]).reshape(1, 3, 1, 1)
    student = torch.zeros(1, 3, 1, 1, requires_grad=True)
    distillation_loss(student, teacher, torch.zeros(1, 1, 1, dtype=torch.long)).backward()
    expected = F.softmax(torch.zeros(3), 0) - F.softmax(teacher.reshape(3), 0)
    assert torch.allclose(student.grad.reshape(3), expected, atol=1e-6)


def test_a_run_learns_from_the_teacher_on_training_batches_only(trained, carla_dir, tmp_path, monkeypatch):
    calls = []
    real = distill.Teacher.__call__

    def counted(self, images):
        calls.append(images.shape[0])
        return real(self, images)
    monkeypatch.setattr(distill.Teacher, "__call__", counted)
    common = ["train", "--data", str(carla_dir), "--epochs", "1", *TINY_FLAGS]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert not calls
    assert main([*common, "--out", str(tmp_path / "student"), "--distill", str(trained / "best.pt"),
                 "--distill-weight", "5", "--distill-temperature", "2"]) == 0
    ckpt = load_checkpoint(tmp_path / "student" / "last.pt")
    assert sum(calls) == ckpt["data"]["train_images"]  # every training frame once, no validation frame
    config = ckpt["training"]["config"]
    assert (config["distill"], config["distill_weight"], config["distill_temperature"]) == (str(trained / "best.pt"), 5.0, 2.0)
    plain = load_checkpoint(tmp_path / "plain" / "last.pt")["model"]["state_dict"]
    assert any(not torch.equal(plain[k], v) for k, v in ckpt["model"]["state_dict"].items())


def test_a_teacher_of_other_classes_is_one_line_and_no_run(carla_dir, tmp_path, capsys):
    out = tmp_path / "student"
    assert main(["train", "--data", str(carla_dir), "--out", str(out), "--epochs", "1", *TINY_FLAGS,
                 "--distill", "camvid-unet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the teacher predicts 11 classes" in err[0] and "this run 23" in err[0]
    assert not out.exists()
    assert main(["train", "--data", str(carla_dir), "--out", str(out), "--epochs", "1", *TINY_FLAGS,
                 "--distill", str(tmp_path / "missing.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err and not out.exists()


def test_a_teacher_whose_size_rule_the_crops_break_is_one_line_and_no_run(carla_dir, tmp_path, capsys):
    """camvid-fast (sizes in multiples of 32) over CARLA frames mapped to CamVid's classes at 32x48."""
    out = tmp_path / "student"
    assert main(["train", "--data", str(carla_dir), "--out", str(out), "--epochs", "1", *TINY_FLAGS,
                 "--class-map", "carla-to-camvid", "--distill", "camvid-fast"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "multiples of 32; the training crops are 32x48" in err[0] and not out.exists()


def test_int8_calibration_takes_frames_spread_over_the_split_centre_cropped():
    frames = [np.full((6, 8, 3), i, np.uint8) for i in range(10)]
    frames[0][2:4, 2:6] = 200  # the centre of frame 0
    crops = distill.calibration_crops(lambda i: (frames[i], None), 10, (2, 4), frames=5)
    assert crops.shape == (5, 2, 4, 3) and crops[:, 0, 0, 0].tolist() == [200, 2, 4, 6, 8]
    padded = distill.calibration_crops(lambda i: (frames[i], None), 10, (8, 8), frames=1)
    assert padded.shape == (1, 8, 8, 3) and padded[0, 6:].max() == 0 and padded[0, :6].min() == 0


def test_an_int8_teacher_agrees_with_the_float_one_and_a_run_uses_it(trained, carla_dir, tmp_path, capsys,
                                                                    monkeypatch):
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    table = class_table_of(load_checkpoint(trained / "best.pt"))
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((48, 32))) for p in
                       sorted((carla_dir / "CameraRGB").glob("*.png"))])
    cpu = torch.device("cpu")
    exact = distill.Teacher.load(str(trained / "best.pt"), table, (32, 48), cpu, amp=False)
    int8 = distill.Teacher.load(str(trained / "best.pt"), table, (32, 48), cpu, amp=False, int8_frames=images[:4])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    a, b = exact(x), int8(x)
    assert b.shape == a.shape and b.dtype == torch.float32
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.9 and not torch.equal(a, b)
    with pytest.raises(InputError, match="on the CPU"):
        distill.int8_engine(load_checkpoint(trained / "best.pt"), images[:4], torch.device("cuda"), trained)

    built, real = [], distill.int8_engine
    monkeypatch.setattr(distill, "int8_engine", lambda *args: built.append(args[1].shape) or real(*args))
    out = tmp_path / "student"
    assert main(["train", "--data", str(carla_dir), "--out", str(out), "--epochs", "1", *TINY_FLAGS,
                 "--distill", str(trained / "best.pt"), "--distill-int8"]) == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["training"]["config"]["distill_int8"] is True
    assert built == [(ckpt["data"]["train_images"], 32, 48, 3)]  # calibrated once, on the training frames, crop-sized
    capsys.readouterr()
    assert main(["train", "--data", str(carla_dir), "--out", str(tmp_path / "none"), "--epochs", "1", *TINY_FLAGS,
                 "--distill-int8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no teacher is given" in err[-1] and not (tmp_path / "none").exists()
    # on a GPU machine (--device auto picks CUDA): refused before the data is read
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(run, "prepare_data", lambda cfg: pytest.fail("the data was read"))
    assert main(["train", "--data", str(carla_dir), "--out", str(tmp_path / "gpu"), "--epochs", "1", *TINY_FLAGS,
                 "--distill", str(trained / "best.pt"), "--distill-int8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "on the CPU" in err[-1] and not (tmp_path / "gpu").exists()
