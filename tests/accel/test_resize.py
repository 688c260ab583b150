"""The native bilinear 2x upsampling: PyTorch's output to the bit and its gradient within one bf16
rounding of the exact one (edges, one-pixel maps and channel counts that are not multiples of 16
included); other sizes, dtypes and layouts go to F.interpolate; the trainer swaps it into bf16 CPU
training of the networks that resize, with their parameters and state_dict unchanged."""
import os

import pytest
import torch
from torch.nn import functional as F

from roadseg import nets
from roadseg.accel.resize import NativeResize, native_applies, upsample2x, use_native_resize
from roadseg.nets.resize import Resize

pytestmark = pytest.mark.skipif(os.environ.get("ROADSEG_KERNELS") == "0",
                                reason="the kernels are off (ROADSEG_KERNELS=0): the suite checks the fallback")


def _map(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    x = (torch.randn(*shape) * 3).to(torch.bfloat16)
    return x.contiguous(memory_format=torch.channels_last).requires_grad_()


@pytest.mark.parametrize("shape", [(2, 16, 5, 7), (1, 3, 1, 1), (2, 20, 1, 4), (3, 48, 6, 2), (1, 32, 9, 11)])
def test_output_is_pytorchs_and_gradient_within_one_rounding(shape):
    x = _map(shape)
    size = (2 * shape[2], 2 * shape[3])
    assert native_applies(x, size)
    y = upsample2x(x)
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y, F.interpolate(x.detach(), size=size, mode="bilinear", align_corners=False))
    torch.manual_seed(1)
    g = torch.randn(y.shape).to(torch.bfloat16)  # contiguous (NCHW): the kernel takes any layout
    (gx,) = torch.autograd.grad(y, x, g)
    exact = x.detach().double().requires_grad_()
    (g_exact,) = torch.autograd.grad(F.interpolate(exact, size=size, mode="bilinear", align_corners=False), exact,
                                     g.double())
    assert gx.dtype == torch.bfloat16
    assert torch.allclose(gx.double(), g_exact, rtol=2**-8, atol=1e-6)  # the exact sum, rounded once


def test_other_cases_are_left_to_pytorch():
    x = _map((2, 16, 5, 7))
    assert not native_applies(x, (11, 14))  # not exactly 2x
    assert not native_applies(x.float(), (10, 14))
    assert not native_applies(x.detach().contiguous(), (10, 14))  # NCHW
    r = NativeResize()
    for t, size in ((x, (11, 14)), (x.float(), (10, 14)), (x.detach().contiguous(), (10, 14))):
        assert torch.equal(r(t, size), F.interpolate(t, size=size, mode="bilinear", align_corners=False))


@pytest.mark.parametrize("arch", ["resunet", "fastunet"])
def test_swapped_into_the_networks_without_changing_them(arch):
    net = nets.create(arch, num_classes=5, **({"base_filters": 8} if arch == "resunet" else {"width": 8}))
    net.eval()
    keys = list(net.state_dict())
    x = torch.rand(1, 3, 64, 96).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        before = net(x)
    resizes = sum(type(m) is Resize for m in net.modules())
    assert resizes >= 5 and use_native_resize(net) == resizes
    assert list(net.state_dict()) == keys and not any(type(m) is Resize for m in net.modules())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        after = net(x)
    assert torch.equal(before, after)


def test_the_trainer_uses_it_for_bf16_cpu_training(carla_dir, tmp_path):
    from roadseg.config import TrainConfig
    from roadseg.training import train
    seen = []
    original = NativeResize.forward

    def spy(self, x, size):
        seen.append(native_applies(x, size))
        return original(self, x, size)

    NativeResize.forward = spy
    try:
        train(TrainConfig(data=str(carla_dir), out=str(tmp_path / "run"), arch="fastunet", size="64x96",
                          epochs=1, batch_size=4, amp=True, progress=False))
    finally:
        NativeResize.forward = original
    assert seen and any(seen)
