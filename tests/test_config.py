"""Settings are checked before anything is written: every key's type and range, one line naming the
key and its flag (issue 14, item 23)."""
from pathlib import Path

import pytest

from roadseg import nets
from roadseg.cli import main
from roadseg.config import TrainConfig, load_yaml
from roadseg.errors import InputError


@pytest.mark.parametrize("yaml_text, needle", [
    ("lr: 1e-3\n", "lr (--lr) is '1e-3', not a number; YAML reads"),
    ("epochs: two\n", "epochs (--epochs) is 'two', not a whole number"),
    ('augment: "no"\n', "augment (--augment) is 'no', not true or false"),
    ("aug_scale: [2, 1]\n", "aug_scale"),
    ("optimizer: adamm\n", "choose one of adam, adamw, sgd"),
    ("loss: focal\n", "unknown loss 'focal'"),
    ("paste: [Pole]\ncutmix: 0.5\n", "paste (--paste) and cutmix (--cutmix) both paste"),
])
def test_bad_config_values_are_one_line(yaml_text, needle, carla_dir, tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml_text)
    out = tmp_path / "run"
    assert main(["train", "--data", str(carla_dir), "--config", str(tmp_path / "c.yaml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("flag, value", [("--batch-size", "0"), ("--batch-size", "-4"), ("--lr", "nan"),
                                         ("--lr", "-0.1"), ("--lr", "inf"), ("--epochs", "0"), ("--epochs", "-2"),
                                         ("--val-fraction", "1.5"), ("--dropout", "1"),
                                         ("--cutmix", "1.5"), ("--cutmix", "-0.5"), ("--aux-weight", "-1"),
                                         ("--aux-weight", "nan")])
def test_bad_flag_values_are_one_line(flag, value, carla_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(carla_dir), "--out", str(out), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert flag in err and len(err.splitlines()) == 1 and not out.exists()


def test_good_settings_pass():
    TrainConfig(lr=1, ema=0.999, dropout=0.0, num_classes=5, ignore_index=255, crop="32x32", aug_scale=[1, 1])
    with pytest.raises(InputError):
        TrainConfig(num_classes=300)


@pytest.mark.parametrize("recipe", sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_recipes_resolve(recipe):
    """Every recipe under configs/ names only known keys with valid values (what `train --config` checks
    before it reads any data; TrainConfig validates on construction)."""
    values = load_yaml(recipe)
    cfg = TrainConfig.resolve(recipe)
    assert cfg.arch in nets.names()
    assert all(getattr(cfg, key) == (tuple(v) if isinstance(getattr(cfg, key), tuple) else v)
               for key, v in values.items())


def test_anchored_makes_paths_absolute_and_leaves_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.yaml").write_text("[1, 2]\n")
    cfg = TrainConfig(data="d", out="runs/x", init="camvid", distill="teacher.pt", class_weights="w.yaml",
                      class_map="carla08", encoder_weights="imagenet").anchored()
    assert (cfg.data, cfg.out, cfg.class_weights) == (str(tmp_path / "d"), str(tmp_path / "runs/x"),
                                                       str(tmp_path / "w.yaml"))
    # names of built-ins, and paths to nothing here, stay as given (a missing file keeps its own error)
    assert (cfg.init, cfg.distill, cfg.class_map, cfg.encoder_weights) == ("camvid", "teacher.pt", "carla08",
                                                                           "imagenet")
    assert TrainConfig(data="/abs/d", out=str(tmp_path)).anchored().data == "/abs/d"
    (tmp_path / "camvid").mkdir()  # a dataset folder named like a shipped model does not hide the model
    (tmp_path / "run").mkdir()  # a run folder given to --init is a path
    assert TrainConfig(data="camvid", init="camvid", distill="run").anchored().init == "camvid"
    assert TrainConfig(data="camvid", init="camvid", distill="run").anchored().distill == str(tmp_path / "run")
