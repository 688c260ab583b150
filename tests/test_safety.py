"""Nothing a user has is lost: no command writes to or deletes its own inputs, two outputs never share
a name, existing files are replaced only with --overwrite, a run folder in use is refused, and
--resume refuses settings that would make it another run. Each test names the issue-14 item it pins."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from roadseg.checkpoint import load_checkpoint
from roadseg.cli import main
from roadseg.errors import InputError
from roadseg.safety import RunLock, relation

from .conftest import save, tiny_config

TRAIN = ["--epochs", "1", "--size", "32x48", "--base-filters", "4", "--depth", "3", "--batch-size", "4",
         "--no-progress"]


def digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` with the hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_relation_sees_through_symlinks_and_dots(tmp_path):
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "data")
    assert relation(tmp_path / "link", tmp_path / "data") == "is"
    assert relation(tmp_path / "data" / "sub" / "..", tmp_path / "data") == "is"
    assert relation(tmp_path / "link" / "sub", tmp_path / "data") == "lies inside"
    assert relation(tmp_path, tmp_path / "link") == "contains"
    assert relation(tmp_path / "other", tmp_path / "data") is None


# 1: predict into its own input folder
@pytest.mark.parametrize("how", ["same", "symlink", "dots"])
def test_predict_into_the_input_folder_is_refused(trained, carla_dir, tmp_path, capsys, how):
    frames = tmp_path / "frames"
    frames.mkdir()
    for p in sorted((carla_dir / "CameraRGB").glob("*.png"))[:3]:
        (frames / p.name).write_bytes(p.read_bytes())
    before = digest(frames)
    out = {"same": frames, "symlink": tmp_path / "alias", "dots": frames / ".." / "frames"}[how]
    if how == "symlink":
        out.symlink_to(frames)
    assert main(["predict", "--model", str(trained / "best.pt"), str(frames), "--out", str(out)]) == 2
    one_error_line(capsys, "input folder")
    assert digest(frames) == before


def test_predict_output_that_is_an_input_file_is_refused(trained, carla_dir, tmp_path, capsys):
    frame = save(tmp_path / "in" / "x.png", np.zeros((40, 60, 3), np.uint8))
    before = frame.read_bytes()
    # the frame is given as a file, the --out folder holds it: <out>/x.png would be the frame itself
    assert main(["predict", "--model", str(trained / "best.pt"), str(frame), "--out", str(frame.parent)]) == 2
    one_error_line(capsys, "x.png")
    assert frame.read_bytes() == before


# 17: derived names that collide
def test_derived_output_names_that_collide_are_refused(trained, tmp_path, capsys):
    a = save(tmp_path / "in" / "x.png", np.zeros((40, 60, 3), np.uint8))
    b = save(tmp_path / "in" / "x_color.png", np.full((40, 60, 3), 90, np.uint8))
    out = tmp_path / "out"
    assert main(["predict", "--model", str(trained / "best.pt"), str(a), str(b), "--out", str(out)]) == 2
    one_error_line(capsys, "x_color.png", "written twice")
    assert not out.exists()


def test_predict_keeps_existing_outputs_unless_overwrite(trained, tmp_path, capsys):
    frame = save(tmp_path / "in" / "x.png", np.zeros((40, 60, 3), np.uint8))
    out = tmp_path / "out"
    args = ["predict", "--model", str(trained / "best.pt"), str(frame), "--out", str(out)]
    assert main(args) == 0
    (out / "x.png").write_bytes(b"mine")
    assert main(args) == 2
    one_error_line(capsys, "already exists", "--overwrite")
    assert (out / "x.png").read_bytes() == b"mine"
    assert main(args + ["--overwrite"]) == 0 and (out / "x.png").read_bytes() != b"mine"


# 2: a second demo keeps the first one's files
def test_a_second_demo_keeps_the_first_run(tmp_path, capsys):
    from roadseg.demo import run_demo
    out = tmp_path / "demo"
    run_demo(out, frames=10, epochs=1, batch_size=4)
    before = digest(out)
    assert main(["demo", "--out", str(out), "--frames", "10", "--epochs", "1"]) == 2
    one_error_line(capsys, "earlier demo run", "--overwrite", "--out")
    assert digest(out) == before


# 3: a video without frames leaves an existing output alone
def test_a_video_without_frames_keeps_the_existing_output(trained, tmp_path, monkeypatch):
    pytest.importorskip("imageio_ffmpeg")
    from roadseg.inference import video
    from roadseg.inference.predictor import Predictor
    monkeypatch.setattr(video, "read_video", lambda path: ({"size": (64, 48), "fps": 10.0}, iter(())))
    target = tmp_path / "drive_overlay.mp4"
    target.write_bytes(b"an earlier video")
    with pytest.raises(InputError, match="no video frames"):
        video.predict_video(Predictor.from_checkpoint(trained / "best.pt"), tmp_path / "drive.mp4", target)
    assert target.read_bytes() == b"an earlier video" and not list(tmp_path.glob(".*.tmp"))


# 4: on resume only rank 0 removes stale temporary files; the other ranks wait
def test_only_rank_0_cleans_stale_files_on_resume(tmp_path, carla_dir, monkeypatch):
    from roadseg.training import distributed, run as run_module
    out = run_module.train(tiny_config(carla_dir, tmp_path / "r", epochs=1))
    stale = out / ".last.pt.abc.tmp"
    stale.write_bytes(b"half a checkpoint")
    rank1 = distributed.World(rank=1, size=2)
    monkeypatch.setattr(distributed.World, "from_env", classmethod(lambda cls, device="auto": rank1))
    for name in ("barrier", "close"):
        monkeypatch.setattr(distributed.World, name, lambda self: None)
    monkeypatch.setattr(distributed.World, "sum", lambda self, t: t)
    monkeypatch.setattr("torch.nn.parallel.DistributedDataParallel", lambda net, **kw: net)
    run_module.train(tiny_config(carla_dir, out, epochs=1), resume=True)  # nothing left to train
    assert stale.exists()  # rank 1 left it to rank 0


# 16: a run folder that is, contains or lies inside the dataset or the working folder
@pytest.mark.parametrize("where", ["data", "inside", "parent", "cwd"])
def test_train_never_writes_into_or_deletes_its_inputs(copy_carla, tmp_path, monkeypatch, capsys, where):
    data = copy_carla()
    monkeypatch.chdir(tmp_path)
    before = digest(tmp_path)
    out = {"data": data, "inside": data / "runs", "parent": tmp_path, "cwd": Path(".")}[where]
    assert main(["train", "--data", str(data), "--out", str(out), "--overwrite", *TRAIN]) == 2
    one_error_line(capsys, "roadseg never writes into its inputs" if where != "cwd" else "the dataset")
    assert digest(tmp_path) == before


def test_overwrite_never_deletes_the_working_folder(carla_dir, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    (work / "notes").mkdir(parents=True)
    (work / "notes" / "keep.txt").write_text("mine")
    monkeypatch.chdir(work / "notes")
    assert main(["train", "--data", str(carla_dir), "--out", str(work), "--overwrite", *TRAIN]) == 2
    one_error_line(capsys, "working folder")
    assert (work / "notes" / "keep.txt").read_text() == "mine"


def test_the_config_file_is_an_input_too(carla_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "settings.yaml").write_text("epochs: 1\n")
    assert main(["train", "--data", str(carla_dir), "--config", str(run / "settings.yaml"), "--out", str(run),
                 "--overwrite", *TRAIN]) == 2
    one_error_line(capsys, "contains the config")
    assert (run / "settings.yaml").exists()


# 18: evaluate --json onto its model; export onto its source
def test_evaluate_json_and_report_onto_the_model_are_refused(trained, carla_dir, tmp_path, capsys):
    model = tmp_path / "m.pt"
    model.write_bytes((trained / "best.pt").read_bytes())
    before = model.read_bytes()
    assert main(["evaluate", "--model", str(model), "--data", str(carla_dir), "--json", str(model)]) == 2
    one_error_line(capsys, "is the model")
    assert main(["evaluate", "--model", str(model), "--data", str(carla_dir), "--json",
                 str(carla_dir / "scores.json")]) == 2
    one_error_line(capsys, "lies inside the dataset")
    assert model.read_bytes() == before and not (carla_dir / "scores.json").exists()


def test_export_onto_its_source_is_refused(trained, tmp_path, capsys):
    model = tmp_path / "src.pt"
    model.write_bytes((trained / "last.pt").read_bytes())
    before = model.read_bytes()
    for fmt in ("pt", "onnx"):
        assert main(["export", "--model", str(model), "--format", fmt, str(model)]) == 2
        one_error_line(capsys, "is the model")
    assert model.read_bytes() == before
    assert load_checkpoint(model)["optimizer"]  # still resumable


# 19: synth into an existing dataset; fix-palette onto the dataset
def test_synth_into_an_existing_dataset(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["synth", str(out), "--count", "3", "--size", "48x64"]) == 0
    before = digest(out)
    assert main(["synth", str(out), "--count", "2", "--size", "32x32"]) == 2
    one_error_line(capsys, "already holds a dataset", "--overwrite")
    assert digest(out) == before
    assert main(["synth", str(out), "--count", "2", "--size", "32x32", "--overwrite"]) == 0
    assert len(list((out / "CameraRGB").iterdir())) == 2  # no frames of the old size left behind


def test_fix_palette_onto_the_dataset_is_refused(copy_carla, tmp_path, capsys):
    data = copy_carla()
    (tmp_path / "colours.json").write_text("[[0, 0, 0]]")
    before = digest(data)
    assert main(["check", str(data), "--fix-palette", str(tmp_path / "colours.json"), "--out", str(data)]) == 2
    one_error_line(capsys, "is the dataset")
    assert digest(data) == before


# 20: two runs into one folder
def test_a_run_folder_in_use_is_refused(carla_dir, tmp_path, capsys):
    out = tmp_path / "run"
    with RunLock(out):
        assert main(["train", "--data", str(carla_dir), "--out", str(out), *TRAIN]) == 2
        one_error_line(capsys, "in use by another roadseg run")
        assert not (out / "config.yaml").exists()
    assert not any(out.iterdir())  # the lock goes with the run that held it
    assert main(["train", "--data", str(carla_dir), "--out", str(out), *TRAIN]) == 0


# 21: --resume with other settings
def test_resume_refuses_changed_settings_and_records_allowed_ones(carla_dir, copy_carla, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(carla_dir), "--out", str(out), *TRAIN]) == 0
    config = (out / "config.yaml").read_text()
    other = copy_carla()
    for flag, value, key in (("--data", str(other), "data"), ("--size", "64x64", "size"), ("--lr", "0.1", "lr"),
                             ("--base-filters", "8", "base_filters")):
        assert main(["train", "--resume", str(out), flag, value]) == 2
        one_error_line(capsys, f"cannot change {key}")
        assert (out / "config.yaml").read_text() == config
    assert main(["train", "--resume", str(out), "--epochs", "2", "--data", str(carla_dir / "CameraRGB" / "..")]) == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["training"]["epoch"] == 2
    assert ckpt["training"]["resumes"] == [{"epoch": 1, "changed": {"epochs": [1, 2]}}]


def test_resume_of_a_folder_without_a_run_says_so(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    one_error_line(capsys, "no run to resume")


def test_nothing_is_left_behind_by_refusals(trained, tmp_path):
    """Every refusal above happens before the first write: not even an empty --out folder is made."""
    out = tmp_path / "never"
    assert main(["predict", "--model", str(trained / "best.pt"), str(tmp_path / "missing.png"),
                 "--out", str(out)]) == 2
    assert not out.exists() and os.listdir(tmp_path) == []
