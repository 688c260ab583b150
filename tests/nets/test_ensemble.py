"""The ensemble network: its output is the log of its members' mean class probabilities."""
import pytest
import torch

from roadseg import nets
from roadseg.errors import InputError


def members() -> list[dict]:
    return [{"arch": "unet", "settings": {"base_filters": 4, "depth": 3}},
            {"arch": "fastunet", "settings": {"width": 8}}]


def test_softmax_of_the_output_is_the_mean_of_the_members_probabilities():
    torch.manual_seed(0)
    net = nets.create("ensemble", num_classes=5, members=members()).eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        mean = torch.stack([m(x).softmax(1) for m in net.members]).mean(0)
        out = net(x)
    assert out.shape == (2, 5, 64, 96)
    assert torch.allclose(out.softmax(1), mean, atol=1e-6) and torch.allclose(out.exp().sum(1), torch.ones(2, 64, 96))


def test_members_take_the_ensembles_classes_and_its_size_rule_is_theirs():
    net = nets.create("ensemble", num_classes=7, in_channels=1, members=members())
    assert [m.num_classes for m in net.members] == [7, 7] and [m.in_channels for m in net.members] == [1, 1]
    assert [m.size_multiple for m in net.members] == [4, 32] and net.size_multiple == 32
    assert net.settings["members"][0]["settings"] == {"base_filters": 4, "depth": 3, "in_channels": 1, "num_classes": 7}


@pytest.mark.parametrize("bad", [[], [{"arch": "ensemble", "settings": {}}], [{"arch": "nope"}],
                                 [{"settings": {}}], ["resunet"]])
def test_no_members_a_nested_ensemble_an_unknown_network_or_no_arch_is_one_error(bad):
    with pytest.raises(InputError):
        nets.create("ensemble", num_classes=5, members=bad)


def test_tables_name_an_ensemble_by_its_members():
    label = nets.ensemble.network_label
    assert label("resunet", {"base_filters": 16}) == "resunet"
    assert label("ensemble", nets.create("ensemble", num_classes=3).settings) == "2 x resunet"
    assert label("ensemble", {"members": members()}) == "unet + fastunet"


def test_freeze_encoder_holds_each_members_encoder_and_nothing_else():
    net = nets.create("ensemble", num_classes=5, members=members())
    held = {id(p) for p in net.encoder_parameters()}
    assert held == {id(p) for m in net.members for p in m.encoder_parameters()} and held
    assert all(id(m.classifier.weight) not in held for m in net.members)
    assert len(held) < len(list(net.parameters()))
