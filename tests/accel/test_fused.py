"""oneDNN convolution + ReLU fusion for CPU inference (`roadseg.accel.fused`): which layers it fuses,
the same logits in fp32 and bf16, the packed-weight cache, and the model it leaves unchanged."""
import pytest
import torch
from torch import nn

from roadseg.accel import fused as fused_mod
from roadseg.accel.fused import FusedConv2d, fuse_conv_relu
from roadseg.inference.engines import TorchEngine
from roadseg.nets import UNet

pytestmark = pytest.mark.skipif(not fused_mod.AVAILABLE, reason="this PyTorch has no oneDNN convolution ops")


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Identity(), nn.ReLU(inplace=True),
                         nn.Conv2d(16, 16, 3, padding=2, dilation=2), nn.BatchNorm2d(16),
                         nn.Conv2d(16, 8, 1), nn.Sigmoid(), nn.Conv2d(8, 4, 3, padding="same")).eval()


def test_fuses_conv_relu_pairs_and_leaves_the_rest():
    net = _net()
    fused = fuse_conv_relu(net)
    kinds = [type(m).__name__ for m in fused]
    assert kinds == ["FusedConv2d", "Identity", "Identity", "FusedConv2d", "BatchNorm2d", "FusedConv2d",
                     "Sigmoid", "Conv2d"]  # 'same' padding (a string) stays a plain Conv2d
    assert [m.attr for m in fused if isinstance(m, FusedConv2d)] == ["relu", "none", "none"]
    assert [type(m).__name__ for m in net][:3] == ["Conv2d", "Identity", "ReLU"]  # the original untouched
    x = torch.rand(2, 3, 20, 24)
    with torch.no_grad():
        expected, got = net(x), fused(x)
    assert (got - expected).abs().max().item() <= 1e-5


def test_inplace_fuses_the_model_itself():
    net = _net()
    x = torch.rand(1, 3, 12, 16)
    with torch.no_grad():
        expected = net(x)
        fused = fuse_conv_relu(net, inplace=True)
        assert fused is net and type(net[0]) is FusedConv2d
        assert (fused(x) - expected).abs().max().item() <= 1e-5


def test_bf16_matches_autocast_within_rounding():
    """In bf16 the fused network gives autocast's logits to bf16 rounding (its bias is added in fp32)."""
    torch.manual_seed(1)
    net = UNet(num_classes=6, base_filters=8, depth=3).eval()
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            nn.init.normal_(m.bias, std=0.1)
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = net(x).float()
    got = TorchEngine(net, torch.device("cpu"), "bf16")(x)
    assert got.dtype == torch.float32
    assert (got - expected).abs().max().item() <= 2e-2 * expected.abs().max().item()


def test_packed_weights_follow_the_input_shape():
    """Weights are packed per input shape, at most two kept; a new shape still gives the right numbers."""
    conv = nn.Conv2d(4, 8, 3, padding=1).eval()
    layer = FusedConv2d(conv, relu=True, dtype=torch.float32)
    for n, h, w in ((1, 8, 8), (2, 8, 8), (1, 12, 16), (1, 8, 8)):
        x = torch.rand(n, 4, h, w)
        with torch.no_grad():
            assert (layer(x) - torch.relu(conv(x))).abs().max().item() <= 1e-5
        assert len(layer._packed) <= 2


def test_where_the_op_cannot_be_trusted_the_model_is_returned(monkeypatch):
    """No oneDNN ops, or the first-use check failing (here: an op that raises), leave the network unfused."""
    fused_mod.works.cache_clear()
    try:
        monkeypatch.setattr(fused_mod, "AVAILABLE", False)
        net = _net()
        assert fuse_conv_relu(net) is net
        monkeypatch.setattr(fused_mod, "AVAILABLE", True)
        fused_mod.works.cache_clear()

        def broken(self, x):
            raise RuntimeError("could not create a primitive")
        monkeypatch.setattr(FusedConv2d, "forward", broken)
        assert not fused_mod.works(torch.float32) and fuse_conv_relu(net) is net
    finally:
        fused_mod.works.cache_clear()
