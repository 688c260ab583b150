"""The network registry: names, building by name, and the errors a user sees for a wrong name or
a setting the network does not take (from Python and from `roadseg train --arch`)."""
import pytest

from roadseg import nets
from roadseg.cli import main
from roadseg.errors import InputError


def test_unet_is_registered_and_the_default():
    assert "unet" in nets.names() and nets.DEFAULT == "unet"
    net = nets.create("unet")
    assert isinstance(net, nets.UNet) and net.arch == "unet" and nets.count_parameters(net) == 8_640_471


def test_unknown_names_and_settings_are_input_errors():
    with pytest.raises(InputError, match="unknown network 'nope'.*unet"):
        nets.create("nope")
    with pytest.raises(InputError, match="has no setting width"):
        nets.create("unet", width=3)
    with pytest.raises(InputError, match="cannot be built"):
        nets.create("unet", depth=1)


def test_a_second_name_for_a_registered_class_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        nets.register("unet")(type("Other", (nets.SegNet,), {}))


def test_train_arch_flag(carla_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(carla_dir), "--out", str(out), "--arch", "nope", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown network 'nope'" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    assert main(["train", "--data", str(carla_dir), "--out", str(out), "--arch", "unet", "--epochs", "1",
                 "--base-filters", "4", "--depth", "3", "--size", "32x48", "--batch-size", "4", "--no-progress"]) == 0
    assert (out / "best.pt").exists() and "arch: unet" in (out / "config.yaml").read_text()
