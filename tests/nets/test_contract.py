"""The checks every registered network passes, the way segmentation_models_pytorch runs one test class
over all its models: output size, size errors, settings round trip, checkpoint round trip, ONNX and
OpenVINO parity, INT8 export, the Winograd engine (or its fallback) and one epoch of training
through the trainer.

`TinyNet` below is registered only here: it goes through every check with no test code of its own,
as any network added to roadseg.nets does.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from roadseg import nets
from roadseg.checkpoint import build_model, input_description, load_checkpoint, make_checkpoint, save_checkpoint
from roadseg.classes import generic_table
from roadseg.config import TrainConfig
from roadseg.errors import InputError
from roadseg.inference.engines import OnnxEngine, TorchEngine, WinogradEngine
from roadseg.inference.export import onnx_bytes
from roadseg.training import train

NUM_CLASSES = 5


@nets.register("tiny-test")
class TinyNet(nets.SegNet):
    """A two-layer encoder-decoder with a skip: a network the Winograd engine does not support."""

    def __init__(self, in_channels: int = 3, num_classes: int = 23, width: int = 8) -> None:
        super().__init__()
        self.settings = dict(in_channels=in_channels, num_classes=num_classes, width=width)
        self.down = nn.Conv2d(in_channels, width, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(width, width, 2, stride=2)
        self.head = nn.Conv2d(width + in_channels, num_classes, 1)

    @property
    def size_multiple(self) -> int:
        return 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(*x.shape[-2:])
        return self.head(torch.cat([self.up(F.relu(self.down(x))), x], 1))


# lighter settings where a network's defaults are large (the smp networks' default encoder is resnet34)
LIGHT = {name: {"encoder": "resnet18"} for name in nets.names() if name.startswith("smp-")}


def make(name: str) -> nets.SegNet:
    torch.manual_seed(0)
    return nets.create(name, num_classes=NUM_CLASSES, **LIGHT.get(name, {})).eval()


def sample(net: nets.SegNet, n: int = 2, rows: int = 2, cols: int = 3) -> torch.Tensor:
    m = net.size_multiple
    return torch.rand(n, net.in_channels, rows * m, cols * m, generator=torch.Generator().manual_seed(1))


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= 1e-4 * max(1.0, b.abs().max().item())


@pytest.fixture(params=nets.names())
def name(request) -> str:
    if request.param.startswith("smp-"):  # the optional extra: tested in its own venv (make test-smp)
        pytest.importorskip("segmentation_models_pytorch")
    return request.param


def test_the_tiny_network_is_registered_beside_unet():
    assert {"unet", "tiny-test"} <= set(nets.names())


def test_output_size_equals_input_size(name):
    net = make(name)
    for rows, cols in ((1, 1), (2, 3), (3, 2)):
        x = sample(net, rows=rows, cols=cols)
        with torch.no_grad():
            out = net(x)
        assert out.shape == (2, NUM_CLASSES, *x.shape[-2:]) and torch.isfinite(out).all()


def test_sizes_not_a_multiple_are_one_clear_error(name):
    net = make(name)
    m = net.size_multiple
    if m == 1:
        pytest.skip("every size fits")
    with pytest.raises(InputError, match=f"not divisible by {m}"):
        net(torch.rand(1, net.in_channels, m + 1, m))


def test_settings_rebuild_the_same_network(name):
    net = make(name)
    again = nets.create(name, **net.settings)
    assert type(again) is type(net) and again.arch == name
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}


def test_checkpoint_round_trip_gives_the_same_logits(name, tmp_path):
    net = make(name)
    ckpt = make_checkpoint(net, generic_table(NUM_CLASSES),
                           input_description((2 * net.size_multiple, 3 * net.size_multiple), "bilinear",
                                             net.size_multiple))
    save_checkpoint(ckpt, tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded["model"]["arch"] == name and loaded["input"]["size_multiple"] == net.size_multiple
    x = sample(net)
    with torch.no_grad():
        assert torch.equal(build_model(loaded)(x), net(x))


def test_onnx_export_matches_pytorch(name):
    net = make(name)
    ckpt = make_checkpoint(net, generic_table(NUM_CLASSES), input_description(sample(net).shape[-2:], "bilinear",
                                                                               net.size_multiple))
    x = sample(net, rows=3, cols=2)  # another size than the traced one: dynamic axes
    with torch.no_grad():
        close(OnnxEngine(onnx_bytes(ckpt))(x), net(x))


def test_openvino_fp32_matches_and_int8_runs(name):
    pytest.importorskip("openvino")
    from roadseg.inference.engines import OpenVinoEngine
    from roadseg.inference.export import quantize_int8
    from roadseg.inference.processing import Preprocess
    net = make(name)
    ckpt = make_checkpoint(net, generic_table(NUM_CLASSES), input_description(sample(net).shape[-2:], "bilinear",
                                                                               net.size_multiple))
    x = sample(net)
    data = onnx_bytes(ckpt)
    with torch.no_grad():
        expected = net(x)
    close(OpenVinoEngine(data)(x), expected)
    one = OpenVinoEngine(data, threads=1)
    close(one(x), expected)
    assert [c.get_property("INFERENCE_NUM_THREADS") for c in one._compiled.values()] == [1]
    frames = (x.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    int8 = OpenVinoEngine(quantize_int8(data, frames, Preprocess(ckpt["input"])))(x)
    assert int8.shape == expected.shape and torch.isfinite(int8).all()


def test_winograd_engine_matches_eager_or_falls_back(name):
    from roadseg.accel.winograd import supports, unavailable_reason
    net = make(name)
    x = sample(net)
    engine = WinogradEngine(net)
    expected = TorchEngine(net, torch.device("cpu"))(x)
    close(engine(x), expected)
    assert engine.name == ("winograd" if supports(net) and not unavailable_reason() else "torch")


def test_cpu_fp32_inference_takes_the_winograd_network_only_where_it_runs(name, capsys):
    from roadseg.accel.winograd import supports
    from roadseg.inference.engines import make_engine
    net = make(name)
    engine = make_engine("torch", model=net, device="cpu", precision="fp32")
    assert isinstance(engine, WinogradEngine) == supports(net)
    engine(sample(net))
    assert "does not support" not in capsys.readouterr().err  # the default, not a request: nothing to say


def test_trains_through_the_trainer(name, carla_dir, tmp_path):
    m = make(name).size_multiple
    # 10 training frames in batches of 3: the last batch holds one frame (batch norm over 1x1 maps)
    cfg = TrainConfig(data=str(carla_dir), out=str(tmp_path / "run"), arch=name, epochs=1, batch_size=3,
                      size=f"{2 * m}x{3 * m}", progress=False,
                      **({**LIGHT[name], "encoder_weights": "none"} if name in LIGHT else {}))
    run = train(cfg)
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt["model"]["arch"] == name and ckpt["training"]["config"]["arch"] == name
    assert np.isfinite(ckpt["training"]["history"][0]["train_loss"])


def test_folded_batch_norms_give_the_same_logits(name):
    """The torch engine runs `fold_batch_norms(net)`: the same function, the network left as it was."""
    from roadseg.nets.base import fold_batch_norms
    net = make(name)
    g = torch.Generator().manual_seed(2)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in norms:  # trained-looking statistics, so that folding has something to fold
        c = bn.num_features
        bn.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
        bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
        if bn.affine:
            bn.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            bn.bias.data.copy_(torch.randn(c, generator=g) * 0.2)
    folded = fold_batch_norms(net)
    x = sample(net)
    with torch.no_grad():
        close(folded(x), net(x))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == len(norms)
    if name in ("resunet", "fastunet"):
        assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()) < len(norms) // 2


def test_fused_convolutions_give_the_same_logits(name):
    """On the CPU the torch engine runs `fuse_conv_relu` over the folded network: in fp32 the same
    logits as the network's own modules, the network left as it was."""
    from roadseg.accel.fused import AVAILABLE, FusedConv2d, fuse_conv_relu
    from roadseg.nets.base import fold_batch_norms
    if not AVAILABLE:
        pytest.skip("this PyTorch has no oneDNN convolution ops")
    net = make(name)
    fused = fuse_conv_relu(fold_batch_norms(net))
    x = sample(net)
    with torch.no_grad():
        close(fused(x), net(x))
    assert not any(isinstance(m, FusedConv2d) for m in net.modules())
    if name in ("unet", "resunet", "fastunet", "dabnet"):
        assert any(isinstance(m, FusedConv2d) for m in fused.modules())
