"""Fine-tuning from another model (--init): matching tensors copied, the classifier's rows of shared
classes kept, a mismatched network refused, the encoder frozen for a while; and the Python API."""
import numpy as np
import torch

import roadseg
from roadseg.checkpoint import load_checkpoint
from roadseg.cli import main
from roadseg.classes import CAMVID_NAMES, CARLA_NAMES, related

from ..conftest import TINY, save

CAMVID_LIKE = ["--epochs", "1", "--size", "32x48", "--base-filters", "16", "--batch-norm", "--dropout", "0.2",
               "--batch-size", "4", "--no-progress"]  # the shipped camvid-unet model's network


def test_related_classes_across_tables():
    rows = related(CAMVID_NAMES, CARLA_NAMES)
    assert rows[CARLA_NAMES.index("Vehicles")] == CAMVID_NAMES.index("Car")
    assert rows[CARLA_NAMES.index("SideWalk")] == CAMVID_NAMES.index("Pavement")
    assert CARLA_NAMES.index("Bridge") not in rows


def test_init_from_the_same_table_takes_every_tensor(trained, carla_dir, tmp_path, capsys):
    run = roadseg.train(carla_dir, tmp_path / "ft", init=str(trained / "best.pt"), **TINY, epochs=1)
    line = capsys.readouterr().out
    ckpt = load_checkpoint(run / "last.pt")
    total = len(ckpt["model"]["state_dict"])
    assert f"took {total} of {total} tensors" in line
    assert ckpt["training"]["init"]["taken"] == total and ckpt["training"]["config"]["init"] == str(trained / "best.pt")


def test_init_from_camvid_into_carla_keeps_shared_classifier_rows(carla_dir, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["train", "--data", str(carla_dir), "--out", str(out), "--init", "camvid-unet", "--epochs", "1",
                 *CAMVID_LIKE[2:], "--lr", "1e-9"]) == 0
    line = capsys.readouterr().out
    assert "classifier rows of 10 shared classes" in line and "Vehicles" in line
    source = load_checkpoint("camvid-unet")["model"]["state_dict"]
    tuned = load_checkpoint(out / "last.pt")["model"]["state_dict"]
    car, vehicles = CAMVID_NAMES.index("Car"), CARLA_NAMES.index("Vehicles")
    # lr 1e-9: one epoch leaves the copied weights where they were, to float precision
    assert torch.allclose(tuned["classifier.weight"][vehicles], source["classifier.weight"][car].float(), atol=1e-4)
    assert torch.allclose(tuned["encoder.0.0.weight"], source["encoder.0.0.weight"].float(), atol=1e-4)


def test_init_refuses_another_network_and_resume(trained, carla_dir, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["train", "--data", str(carla_dir), "--out", str(out), "--init", str(trained / "best.pt"),
                 "--arch", "fastunet", "--size", "64x96", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "is a 'unet' network; this run trains 'fastunet'" in err and not out.exists()
    assert main(["train", "--resume", str(trained), "--init", "camvid-unet"]) == 2
    assert "--init and --resume together" in capsys.readouterr().err


def test_freeze_encoder_holds_it_for_the_first_epochs(trained, carla_dir, tmp_path):
    start = load_checkpoint(trained / "best.pt")["model"]["state_dict"]
    frozen = roadseg.train(carla_dir, tmp_path / "a", init=str(trained / "best.pt"), freeze_encoder=1, **TINY,
                           epochs=1)
    after1 = load_checkpoint(frozen / "last.pt")["model"]["state_dict"]
    assert torch.equal(after1["encoder.0.0.weight"], start["encoder.0.0.weight"])
    assert not torch.equal(after1["classifier.weight"], start["classifier.weight"])
    assert main(["train", "--resume", str(frozen), "--epochs", "2"]) == 0
    after2 = load_checkpoint(frozen / "last.pt")["model"]["state_dict"]
    assert not torch.equal(after2["encoder.0.0.weight"], start["encoder.0.0.weight"])


def test_evaluating_a_model_on_another_class_table_is_refused(carla_dir, capsys):
    """A CamVid model on CARLA masks: one line naming both tables, no score."""
    assert main(["evaluate", "--model", "camvid", "--data", str(carla_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds carla masks (23 classes) but the model predicts the camvid classes" in err
    assert len(err.splitlines()) == 1


def test_check_recognises_carla_08_masks(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(3):
        save(tmp_path / "d" / "CameraRGB" / f"{i}.png", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
        ids = rng.integers(0, 13, (24, 32)).astype(np.uint8)
        ids[:8] = 0  # the sky, as CARLA 0.8 labels it
        rgba = np.zeros((24, 32, 4), np.uint8)
        rgba[:, :, 0], rgba[:, :, 3] = ids, 255
        save(tmp_path / "d" / "CameraMask" / f"{i}.png", rgba)
    assert main(["check", str(tmp_path / "d")]) == 1
    assert "--classes carla08" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "d"), "--classes", "carla08"]) == 0
    assert "None" in capsys.readouterr().out


def test_class_maps_on_training_and_evaluation(carla_dir, tmp_path, capsys):
    """Issue 16, item 2: built-in and file maps; evaluate scores only the classes a map relates."""
    out = tmp_path / "r08"
    assert main(["train", "--data", str(carla_dir), "--out", str(out), "--classes", "carla08", "--class-map",
                 "carla-to-carla08", "--epochs", "1", "--size", "32x48", "--base-filters", "4", "--depth", "3",
                 "--batch-size", "4", "--no-progress"]) == 0
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["classes"]["names"][0] == "None" and len(ckpt["classes"]["names"]) == 13
    capsys.readouterr()
    # the CamVid model scored on CARLA masks mapped to CamVid's ids: no refusal, a note, related classes only
    assert main(["evaluate", "--model", "camvid", "--data", str(carla_dir), "--class-map", "carla-to-camvid"]) == 0
    out_text = capsys.readouterr().out
    note = next(line for line in out_text.splitlines() if line.startswith("note:"))
    assert "scored only the 10 classes it relates" in note and "Bicyclist" not in note
    (tmp_path / "map.yaml").write_text("Vehicles: Car\nRoad: Road\n7: 3\n")
    assert main(["evaluate", "--model", "camvid", "--data", str(carla_dir), "--class-map", str(tmp_path / "map.yaml"),
                 "--classes", "camvid"]) == 0
    assert "scored only the 2 classes it relates (Road, Car)" in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text("Spaceship: Car\n")
    assert main(["evaluate", "--model", "camvid", "--data", str(carla_dir), "--class-map", str(tmp_path / "bad.yaml"),
                 "--classes", "camvid"]) == 2
    assert "names source class 'Spaceship'" in capsys.readouterr().err


def test_init_from_the_camvid_ensemble_keeps_each_members_shared_classifier_rows(carla_dir, tmp_path, capsys):
    """The shipped camvid is two resunets (`--arch ensemble`'s default members): both members' rows of
    shared classes are copied into a CARLA run, as a single network's are."""
    out = tmp_path / "ft"
    assert main(["train", "--data", str(carla_dir), "--out", str(out), "--init", "camvid", "--arch", "ensemble",
                 "--epochs", "1", "--size", "64x96", "--batch-size", "4", "--no-progress", "--lr", "1e-9"]) == 0
    line = capsys.readouterr().out
    assert "classifier rows of 10 shared classes" in line and "new:" not in line
    source = load_checkpoint("camvid")["model"]["state_dict"]
    tuned = load_checkpoint(out / "last.pt")["model"]["state_dict"]
    car, vehicles = CAMVID_NAMES.index("Car"), CARLA_NAMES.index("Vehicles")
    for member in ("members.0", "members.1"):
        key = f"{member}.classifier.weight"
        assert torch.allclose(tuned[key][vehicles], source[key][car].float(), atol=1e-3)
