"""The U-Net: the notebook's exact parameter counts, shapes and size checks."""
import pytest
import torch

from roadseg.errors import InputError
from roadseg.nets import UNet, count_parameters


def test_notebook_parameter_count():
    model = UNet()
    assert count_parameters(model) == 8_640_471


def test_notebook_per_layer_counts():
    model = UNet()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model.encoder[0][0]) == 896                 # first conv: 3*3*3*32 + 32
    assert count(model.encoder[4][0]) == 1_180_160           # bottleneck conv 1: 3*3*256*512 + 512
    assert count(model.encoder[4][2]) == 2_359_808           # bottleneck conv 2: 3*3*512*512 + 512
    assert count(model.classifier) == 759                    # 1x1 conv: 32*23 + 23
    assert count(model.decoder[0].up) == 3 * 3 * 512 * 256 + 256   # Conv2DTranspose(256, 3)
    assert count(model.head_conv) == 3 * 3 * 32 * 32 + 32
    dropouts = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.3, 0.3]


class ModelContract:
    """What every U-Net variant must do; subclasses set `kwargs`."""

    kwargs: dict = {}

    def make(self) -> UNet:
        torch.manual_seed(0)
        return UNet(**self.kwargs).eval()

    @pytest.mark.parametrize("size", [(16, 16), (32, 48), (96, 128)])
    def test_output_matches_input_size(self, size):
        model = self.make()
        n_cls = model.settings["num_classes"]
        m = model.size_multiple
        h, w = (max(m, s // m * m) for s in size)
        out = model(torch.rand(2, model.settings["in_channels"], h, w))
        assert out.shape == (2, n_cls, h, w)
        assert torch.isfinite(out).all()

    def test_rejects_size_not_divisible(self):
        model = self.make()
        m = model.size_multiple
        with pytest.raises(InputError, match="not divisible"):
            model(torch.rand(1, model.settings["in_channels"], m + 1, m))

    def test_backward_reaches_every_parameter(self):
        model = self.make().train()
        m = model.size_multiple
        out = model(torch.rand(2, model.settings["in_channels"], m * 2, m * 2))
        out.sum().backward()
        assert all(p.grad is not None for p in model.parameters())

    def test_deterministic_init(self):
        a, b = self.make(), self.make()
        for pa, pb in zip(a.parameters(), b.parameters()):
            assert torch.equal(pa, pb)


class TestNotebookUNet(ModelContract):
    kwargs = {}


class TestBatchNormUNet(ModelContract):
    kwargs = {"batch_norm": True, "base_filters": 8}


class TestShallowUNet(ModelContract):
    kwargs = {"depth": 3, "base_filters": 4, "num_classes": 11, "in_channels": 1}


def test_he_normal_std():
    conv = UNet().encoder[3][0]  # 128 -> 256, fan_in 1152
    std = conv.weight.std().item()
    assert abs(std - (2 / 1152) ** 0.5) < 0.1 * (2 / 1152) ** 0.5
