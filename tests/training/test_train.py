"""Training writes its run folder, resumes exactly, and never overwrites a run by accident."""
import csv
import json
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml

from roadseg.checkpoint import load_checkpoint
from roadseg.config import TrainConfig
from roadseg.errors import InputError
from roadseg.training import train

from ..conftest import tiny_config


def test_run_folder_contents(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"best.pt", "last.pt", "metrics.csv", "config.yaml", "curves.png"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    rows = list(csv.DictReader(open(trained / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for key in ("train_loss", "train_pixel_accuracy", "val_loss", "val_pixel_accuracy", "val_mean_iou"):
        assert 0 <= float(rows[-1][key]) < 10
    cfg = yaml.safe_load(open(trained / "config.yaml"))
    assert cfg["epochs"] == 2 and cfg["base_filters"] == 4 and cfg["lr"] == 3e-3


def test_training_reduces_loss(tmp_path, carla_dir):
    run = train(tiny_config(carla_dir, tmp_path / "r", epochs=6))
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])


def test_resume_equals_uninterrupted(tmp_path, carla_dir):
    straight = train(tiny_config(carla_dir, tmp_path / "a", epochs=2))
    train(tiny_config(carla_dir, tmp_path / "b", epochs=1))
    resumed = train(tiny_config(carla_dir, tmp_path / "b", epochs=2), resume=True)
    a = load_checkpoint(straight / "last.pt")["model"]["state_dict"]
    b = load_checkpoint(resumed / "last.pt")["model"]["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert load_checkpoint(resumed / "last.pt")["training"]["epoch"] == 2
    rows = list(csv.DictReader(open(resumed / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]


def test_ema_validates_and_saves_the_average_and_resumes_exactly(tmp_path, carla_dir):
    straight = train(tiny_config(carla_dir, tmp_path / "a", epochs=2, ema=0.9, batch_norm=True))
    train(tiny_config(carla_dir, tmp_path / "b", epochs=1, ema=0.9, batch_norm=True))
    resumed = train(tiny_config(carla_dir, tmp_path / "b", epochs=2, ema=0.9, batch_norm=True), resume=True)
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(resumed / "last.pt")
    for key in ("model", "training_weights"):
        x, y = (a[key]["state_dict"], b[key]["state_dict"]) if key == "model" else (a[key], b[key])
        assert all(torch.equal(x[k], y[k]) for k in x), key
    averaged, stepped = a["model"]["state_dict"], a["training_weights"]
    assert not torch.equal(averaged["classifier.weight"], stepped["classifier.weight"])
    assert a["ema_steps"] == b["ema_steps"] > 0
    assert "training_weights" not in load_checkpoint(straight / "best.pt")


def test_ema_warms_up_so_the_start_fades(tmp_path, carla_dir):
    """With a long average (0.999) and few steps, the average follows the trained weights instead of
    keeping the initial ones (whose batch-norm variance of 1 ruined a CamVid run's average)."""
    run = train(tiny_config(carla_dir, tmp_path / "a", epochs=2, ema=0.999, batch_norm=True))
    ckpt = load_checkpoint(run / "last.pt")
    averaged, trained = ckpt["model"]["state_dict"], ckpt["training_weights"]
    var = [k for k in averaged if k.endswith("running_var")][0]
    # 6 updates: the first average weighs the start by 0.1, later ones by (1 + n) / (10 + n) only
    start_share = 0.1 * 2 / 11 * 3 / 12 * 4 / 13 * 5 / 14 * 6 / 15
    assert start_share < 1e-3
    gap = (averaged[var] - trained[var]).abs().max() / trained[var].abs().max()
    assert gap < 0.2  # 0.06 measured; 0.56 without the warm-up


def test_existing_run_not_overwritten(tmp_path, carla_dir):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        train(tiny_config(carla_dir, out, epochs=1))
    assert (out / "keep.txt").read_text() == "mine"
    train(tiny_config(carla_dir, out, epochs=1), overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "last.pt").exists()


def test_resume_from_another_directory_and_a_moved_run_folder(tmp_path, carla_dir, monkeypatch):
    from roadseg.cli import main
    (tmp_path / "a").mkdir()
    os.symlink(carla_dir, tmp_path / "a" / "data")
    monkeypatch.chdir(tmp_path / "a")  # the run names its data and folder relative to here
    flags = ["--size", "32x48", "--base-filters", "4", "--depth", "3", "--batch-size", "4", "--no-progress"]
    assert main(["train", "--data", "data", "--out", "run", "--epochs", "1", *flags]) == 0
    saved = yaml.safe_load(open("run/config.yaml"))
    assert saved["data"] == str(tmp_path / "a" / "data") and saved["out"] == str(tmp_path / "a" / "run")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", "a/run", "--epochs", "2"]) == 0
    os.rename("a/run", "moved")  # a run folder moved elsewhere resumes where it now is
    assert main(["train", "--resume", "moved", "--epochs", "3"]) == 0
    assert load_checkpoint(tmp_path / "moved" / "last.pt")["training"]["epoch"] == 3
    assert yaml.safe_load(open("moved/config.yaml"))["out"] == str(tmp_path / "moved")
    assert main(["train", "--resume", "moved", "--epochs", "4", "--data", str(tmp_path)]) == 2  # other data: refused


def test_resume_without_checkpoint(tmp_path, carla_dir):
    with pytest.raises(InputError, match="nothing to resume"):
        train(tiny_config(carla_dir, tmp_path / "none"), resume=True)


def test_config_yaml_then_flags(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 7\nlr: 0.01\nbatch_size: 4\n")
    cfg = TrainConfig.resolve(tmp_path / "c.yaml", {"epochs": 3, "lr": None})
    assert (cfg.epochs, cfg.lr, cfg.batch_size, cfg.base_filters) == (3, 0.01, 4, 32)
    (tmp_path / "bad.yaml").write_text("epochz: 7\n")
    with pytest.raises(InputError, match="unknown setting"):
        TrainConfig.resolve(tmp_path / "bad.yaml")


RECIPE = dict(crop="32x32", augment=True, class_weights="median-frequency", optimizer="adamw",
              weight_decay=1e-4, schedule="poly", warmup_epochs=1, loss="ce+dice", batch_norm=True)


def test_recipe_resume_equals_uninterrupted(tmp_path, carla_dir):
    """With augmentation, a schedule and batch norm, resume still reproduces the weights exactly."""
    straight = train(tiny_config(carla_dir, tmp_path / "a", epochs=3, **RECIPE))
    train(tiny_config(carla_dir, tmp_path / "b", epochs=1, **RECIPE))
    resumed = train(tiny_config(carla_dir, tmp_path / "b", epochs=3, **RECIPE), resume=True)
    a = load_checkpoint(straight / "last.pt")
    b = load_checkpoint(resumed / "last.pt")
    for k in a["model"]["state_dict"]:
        assert torch.equal(a["model"]["state_dict"][k], b["model"]["state_dict"][k]), k
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 3 * 3
    cfg = yaml.safe_load(open(resumed / "config.yaml"))
    assert cfg["crop"] == "32x32" and cfg["schedule"] == "poly" and cfg["aug_scale"] == [0.75, 1.5]


def test_workers_and_cache_off_give_the_same_weights_and_resume_exactly(tmp_path, carla_dir):
    """Issue 13, item 9: two DataLoader workers decoding every frame each epoch (--cache-gb 0) train
    the same weights as the in-process, fully cached path, and a resumed run matches both."""
    straight = train(tiny_config(carla_dir, tmp_path / "a", epochs=2, workers=0, **RECIPE))
    train(tiny_config(carla_dir, tmp_path / "b", epochs=1, workers=2, cache_gb=0.0, **RECIPE))
    resumed = train(tiny_config(carla_dir, tmp_path / "b", epochs=2, workers=2, cache_gb=0.0, **RECIPE), resume=True)
    a = load_checkpoint(straight / "last.pt")["model"]["state_dict"]
    b = load_checkpoint(resumed / "last.pt")["model"]["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(resumed / "last.pt")["training"]["config"]["cache_gb"] == 0.0


def test_early_stopping(tmp_path, carla_dir):
    run = train(tiny_config(carla_dir, tmp_path / "r", epochs=30, patience=1, lr=0.0))
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert len(rows) == 2  # lr 0: nothing improves after epoch 1
    from roadseg.evaluation.plots import best_epoch, curves_figure
    history = load_checkpoint(run / "last.pt")["training"]["history"]
    assert best_epoch(history) == 1
    figure = curves_figure(history, "early stop after epoch 2")
    assert figure._suptitle.get_text() == "early stop after epoch 2"
    assert any("best epoch 1" in (line.get_label() or "") for line in figure.axes[2].get_lines())


def test_bad_crop_writes_nothing(tmp_path, carla_dir):
    with pytest.raises(InputError, match="not divisible"):
        train(tiny_config(carla_dir, tmp_path / "r", crop="30x30"))
    assert not (tmp_path / "r").exists()


def test_sigterm_stops_cleanly_and_resumes(tmp_path, carla_dir):
    import os
    import signal
    import threading

    from roadseg.training.signals import Interrupted

    out = tmp_path / "r"
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    with pytest.raises(Interrupted) as info:
        train(tiny_config(carla_dir, out, epochs=1000))
    timer.cancel()
    assert info.value.exit_code == 128 + signal.SIGTERM
    assert f"roadseg train --resume {out}" in str(info.value)
    done = load_checkpoint(out / "last.pt")["training"]["epoch"]
    assert 0 <= done < 1000
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    train(tiny_config(carla_dir, out, epochs=done + 1), resume=True)
    assert load_checkpoint(out / "last.pt")["training"]["epoch"] == done + 1


@pytest.mark.parametrize("error", ["oserror", "torch"])
def test_full_disk_keeps_previous_checkpoint(tmp_path, carla_dir, monkeypatch, error):
    import errno

    out = train(tiny_config(carla_dir, tmp_path / "r", epochs=1))
    before = (out / "last.pt").read_bytes()

    def full(*args, **kwargs):
        if error == "torch":  # what torch.save's writer raises (item 22): a RuntimeError, not an OSError
            raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing "
                               "file data/3: file write failed")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(InputError, match="last.pt: cannot be written \\(no space left on the device\\); free disk"):
        train(tiny_config(carla_dir, out, epochs=2), resume=True)
    assert (out / "last.pt").read_bytes() == before
    assert not list(out.glob(".*.tmp"))


def test_unwritable_and_impossible_outputs_are_one_accurate_line(trained, carla_dir, tmp_path, capsys):
    from roadseg.cli import main
    frame = str(carla_dir / "CameraRGB" / "000001.png")
    cases = [(tmp_path / ("x" * 260), "name is too long", "shorter name")]
    blocker = tmp_path / "afile"
    blocker.write_text("mine")
    cases.append((blocker / "sub", "a file stands where a folder is needed", "another output path"))
    if os.getuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases.append((locked / "out", "permission denied", "writable output folder"))
    for out, what, hint in cases:
        assert main(["predict", "--model", str(trained / "best.pt"), frame, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert what in err and hint in err and len(err.splitlines()) == 1, err
    assert blocker.read_text() == "mine"
    long_name = tmp_path / ("s" * 245 + ".json")  # 250 characters: allowed, and so is its temporary file
    assert main(["evaluate", "--model", str(trained / "best.pt"), "--data", str(carla_dir), "--json",
                 str(long_name)]) == 0 and long_name.exists()


def test_tensorboard_event_files(tmp_path, carla_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(tiny_config(carla_dir, tmp_path / "r", epochs=2, tensorboard=True))
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/train", "loss/val", "mean_iou/val", "pixel_accuracy/train", "lr"} <= tags
    assert [e.step for e in acc.Scalars("loss/train")] == [1, 2]


def test_compiled_training_runs(tmp_path, carla_dir):
    run = train(tiny_config(carla_dir, tmp_path / "r", epochs=1, compile=True))
    assert load_checkpoint(run / "last.pt")["training"]["epoch"] == 1


def test_nan_loss_stops_with_epoch_and_step(tmp_path, carla_dir, monkeypatch):
    import roadseg.training.build as train_module
    from roadseg.errors import RoadsegError

    real = train_module.make_loss

    def exploding(*args, **kwargs):
        loss = real(*args, **kwargs)
        calls = {"n": 0}

        def fn(logits, target):
            calls["n"] += 1
            value = loss(logits, target)
            return value * float("nan") if calls["n"] == 5 else value
        return fn

    monkeypatch.setattr(train_module, "make_loss", exploding)
    out = tmp_path / "r"
    with pytest.raises(RoadsegError, match=r"loss became nan at epoch 2, step 2; last good checkpoint"):
        train(tiny_config(carla_dir, out, epochs=3, val_fraction=0.0, batch_size=4))
    assert load_checkpoint(out / "last.pt")["training"]["epoch"] == 1


@pytest.mark.parametrize("amp", [True, False])
def test_cpu_mixed_precision_only_where_the_cpu_has_bf16(tmp_path, carla_dir, amp):
    from roadseg.device import cpu_has_native_bf16
    from roadseg.training import Trainer, prepare_data

    cfg = tiny_config(carla_dir, tmp_path / "r", amp=amp, device="cpu")
    trainer = Trainer(cfg, prepare_data(cfg), tmp_path / "r")
    seen = set()
    trainer.model.classifier.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    scores = trainer._run_epoch(trainer.data.train, train=True)
    assert seen == {torch.bfloat16 if amp and cpu_has_native_bf16() else torch.float32}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # fp32 master weights
    assert 0 < scores["loss"] < 10


def test_mlflow_run_is_read_back_by_mlflows_client(tmp_path, carla_dir, monkeypatch):
    """Issue 13, item 7: settings, every epoch's metrics and the run's files, in a store in the run
    folder; a resumed run goes on in the same MLflow run."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = train(tiny_config(carla_dir, tmp_path / "r", epochs=2, mlflow=True))
    record = json.loads((run / "mlflow.json").read_text())
    client = MlflowClient(tracking_uri=record["tracking_uri"])
    assert record["tracking_uri"].startswith("sqlite:///") and (run / "mlflow.db").is_file()
    mlrun = client.get_run(record["run_id"])
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["epochs"] == "2" and mlrun.data.params["arch"] == "unet"
    assert [m.step for m in client.get_metric_history(record["run_id"], "val_mean_iou")] == [1, 2]
    assert {"best.pt", "curves.png", "metrics.csv", "config.yaml"} <= {a.path for a in client.list_artifacts(record["run_id"])}
    assert not (tmp_path / "mlruns").exists() and not Path("mlruns").exists()

    train(tiny_config(carla_dir, tmp_path / "r", epochs=3, mlflow=True), resume=True)
    assert json.loads((run / "mlflow.json").read_text())["run_id"] == record["run_id"]
    assert [m.step for m in client.get_metric_history(record["run_id"], "val_mean_iou")] == [1, 2, 3]
    assert client.get_run(record["run_id"]).info.status == "FINISHED"


def test_mlflow_without_the_extra_is_one_line_before_anything_is_written(tmp_path, carla_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    with pytest.raises(InputError, match=r"roadseg\[mlflow\]"):
        train(tiny_config(carla_dir, tmp_path / "r", epochs=1, mlflow=True))
    assert not (tmp_path / "r").exists()


def test_augment_without_crop_trains_at_the_training_size(tmp_path, carla_dir):
    """Scale augmentation without --crop used to give frames of several sizes to one batch (a crash in
    np.stack); they are now padded or cropped back to --size."""
    run = train(tiny_config(carla_dir, tmp_path / "r", epochs=1, augment=True, aug_scale=[0.5, 1.5]))
    assert load_checkpoint(run / "last.pt")["training"]["epoch"] == 1


def test_paste_trains_and_an_unknown_class_writes_nothing(tmp_path, carla_dir):
    with pytest.raises(InputError, match="paste \\(--paste\\) names class 'Lamppost'.*one of Unlabeled, Building"):
        train(tiny_config(carla_dir, tmp_path / "bad", paste=["Pole", "Lamppost"]))
    assert not (tmp_path / "bad").exists()
    run = train(tiny_config(carla_dir, tmp_path / "r", epochs=1, paste=["Pole", 12], paste_prob=1.0))
    assert yaml.safe_load((run / "config.yaml").read_text())["paste"] == ["Pole", 12]


def test_cutmix_alone_trains_and_is_saved(tmp_path, carla_dir):
    run = train(tiny_config(carla_dir, tmp_path / "r", epochs=1, cutmix=1.0))  # no crop, no augment: whole frames mixed
    assert yaml.safe_load((run / "config.yaml").read_text())["cutmix"] == 1.0
    assert load_checkpoint(run / "last.pt")["training"]["epoch"] == 1


def test_augmented_class_weights_count_the_pasted_pixels(tmp_path, carla_dir):
    """median-frequency-augmented: a class pasted into every sample is seen more often, so weighs less
    than median frequency over the frames on disk says."""
    weights = {}
    for spec in ("median-frequency", "median-frequency-augmented"):
        run = train(tiny_config(carla_dir, tmp_path / spec, epochs=1, paste=["Road"], paste_prob=1.0, crop="32x32",
                                class_weights=spec))
        weights[spec] = load_checkpoint(run / "last.pt")["training"]["class_weights"]
    assert weights["median-frequency-augmented"][7] < weights["median-frequency"][7]
