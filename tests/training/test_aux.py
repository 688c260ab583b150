"""Deep supervision: heads on the coarser decoder stages train with the network, leave the network and
its checkpoints' model as they are, and resume exactly."""
import sys

import pytest
import torch
import yaml

from roadseg import nets
from roadseg.checkpoint import load_checkpoint
from roadseg.errors import InputError
from roadseg.training import train
from roadseg.training.aux import AuxHeads
from roadseg.training.losses import make_loss

from ..conftest import tiny_config

NETWORKS = [("unet", dict(base_filters=4, depth=3)), ("fastunet", dict(width=4)), ("resunet", dict(base_filters=4))]


@pytest.mark.parametrize("arch, settings", NETWORKS)
def test_heads_learn_from_the_stages_and_leave_the_network_as_it_was(arch, settings):
    torch.manual_seed(0)
    net = nets.create(arch, num_classes=5, **settings)
    x = torch.rand(2, 3, 64, 64)
    masks = torch.randint(0, 5, (2, 64, 64))
    before = net.eval()(x)
    heads = AuxHeads.attach(net.train(), 5)
    assert len(heads.heads) == len(net.decoder) - 1 and net.training  # its mode as it was
    assert torch.equal(net.eval()(x), before) and heads.kept == []  # inference: unchanged, nothing kept
    assert set(net.state_dict()) == set(nets.create(arch, num_classes=5, **settings).state_dict())
    net.train()
    logits = net(x)
    assert [k.shape[-1] for k in heads.kept] == sorted(k.shape[-1] for k in heads.kept)  # coarse to fine
    loss = heads.loss(make_loss("ce+dice"), masks)
    assert torch.isfinite(loss) and heads.kept == []
    (logits.sum() * 0 + loss).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads.parameters())
    assert net.encoder_parameters()[0].grad.abs().sum() > 0  # the stages learn from the heads
    with pytest.raises(RuntimeError, match="kept 0 stages"):
        heads.loss(make_loss("ce"), masks)


def test_a_network_without_decoder_stages_is_refused_in_one_line(carla_dir, tmp_path):
    with pytest.raises(InputError, match="dabnet.*no decoder stages"):
        train(tiny_config(carla_dir, tmp_path / "r", arch="dabnet", base_filters=32, depth=5, aux_weight=0.4))
    assert not (tmp_path / "r").exists()


def test_training_with_heads_resumes_exactly_and_keeps_them_out_of_the_model(tmp_path, carla_dir):
    kw = dict(aux_weight=0.4, batch_norm=True, crop="32x32", augment=True)
    plain = train(tiny_config(carla_dir, tmp_path / "plain", epochs=2, batch_norm=True, crop="32x32", augment=True))
    straight = train(tiny_config(carla_dir, tmp_path / "a", epochs=2, **kw))
    train(tiny_config(carla_dir, tmp_path / "b", epochs=1, **kw))
    resumed = train(tiny_config(carla_dir, tmp_path / "b", epochs=2, **kw), resume=True)
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(resumed / "last.pt")
    for key in ("model", "aux_heads"):
        x, y = (a[key]["state_dict"], b[key]["state_dict"]) if key == "model" else (a[key], b[key])
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), key
    weights = load_checkpoint(plain / "last.pt")["model"]["state_dict"]
    assert weights.keys() == a["model"]["state_dict"].keys()
    assert any(not torch.equal(weights[k], a["model"]["state_dict"][k]) for k in weights)  # the heads taught it
    assert "aux_heads" not in load_checkpoint(straight / "best.pt")
    assert yaml.safe_load((straight / "config.yaml").read_text())["aux_weight"] == 0.4
    with pytest.raises(InputError, match="--resume cannot change aux_weight"):
        train(tiny_config(carla_dir, tmp_path / "b", epochs=3, **{**kw, "aux_weight": 0.0}), resume=True)


def test_heads_train_under_torchrun(carla_dir, tmp_path):
    """Two processes: DistributedDataParallel wraps the network with its heads; the run trains and keeps them."""
    from .test_distributed import _run
    out = tmp_path / "r"
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "roadseg",
          "train", "--data", str(carla_dir), "--out", str(out), "--arch", "fastunet", "--size", "64x96",
          "--epochs", "1", "--batch-size", "4", "--aux-weight", "0.4", "--no-progress"])
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["training"]["config"]["aux_weight"] == 0.4 and len(ckpt["aux_heads"]) > 0
