"""The U-Net's transposed convolution as phase convolutions: the same numbers, gradients included,
and taken only where it pays (bf16 on the CPU, never while exporting)."""
import pytest
import torch
from torch.nn import functional as F

from roadseg.nets import UNet
from roadseg.nets import upsample
from roadseg.nets.upsample import phases_pay, transposed_up, upsample_phases


def _reference(x, w, b):
    return F.conv_transpose2d(x, w, b, stride=2)[:, :, : 2 * x.shape[2], : 2 * x.shape[3]]


@pytest.mark.parametrize("channels_last", [False, True])
def test_phases_match_the_transposed_conv_with_their_gradients(channels_last):
    torch.manual_seed(0)
    x = torch.randn(2, 12, 5, 7, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w = torch.randn(12, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    ours, ref = upsample_phases(x, w, b), _reference(x, w, b)
    assert ours.shape == (2, 6, 10, 14) and torch.allclose(ours, ref, atol=1e-12)
    assert ours.is_contiguous(memory_format=torch.channels_last) or not channels_last
    g = torch.randn_like(ref)
    mine = torch.autograd.grad(ours, (x, w, b), g)
    theirs = torch.autograd.grad(ref, (x, w, b), g)
    assert all(torch.allclose(a, c, atol=1e-10) for a, c in zip(mine, theirs))


def test_the_phase_path_runs_for_bf16_on_the_cpu_only():
    x = torch.randn(1, 4, 3, 3)
    assert not phases_pay(x)
    assert phases_pay(x.bfloat16())
    with torch.autocast("cpu", torch.bfloat16):
        assert phases_pay(x)
    conv = torch.nn.ConvTranspose2d(4, 2, 3, stride=2)
    with torch.autocast("cpu", torch.bfloat16):
        ours = transposed_up(conv, x, (6, 6))
    assert ours.dtype == torch.bfloat16 and torch.allclose(ours.float(), conv(x)[:, :, :6, :6], atol=0.05)


def test_unet_in_bf16_gives_the_same_ids_either_way(monkeypatch):
    torch.manual_seed(0)
    model = UNet(num_classes=5, base_filters=8).eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        fast = model(x).float()
        monkeypatch.setattr(upsample, "phases_pay", lambda t: False)
        slow = model(x).float()
    assert (fast - slow).abs().max() < 0.05
    assert (fast.argmax(1) == slow.argmax(1)).float().mean() > 0.99

