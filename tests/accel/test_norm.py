"""The native batch normalisation of bf16 channels-last maps: PyTorch's training-mode output, input,
weight and bias gradients and running statistics (within a bf16 rounding; its sums are closer to the
exact ones than PyTorch's), for channel counts that do and do not divide 16 and maps far from zero mean;
eval mode, other dtypes and wide maps go to PyTorch's; the trainer swaps it into bf16 CPU training with
the state_dict unchanged."""
import copy
import os

import pytest
import torch
from torch import nn

from roadseg import nets
from roadseg.accel import norm
from roadseg.accel.norm import NativeBatchNorm, native_applies, use_native_norm

pytestmark = pytest.mark.skipif(os.environ.get("ROADSEG_KERNELS") == "0",
                                reason="the kernels are off (ROADSEG_KERNELS=0): the suite checks the fallback")


def _pair(c: int, momentum: float | None = 0.1) -> tuple[nn.BatchNorm2d, nn.BatchNorm2d]:
    torch.manual_seed(c)
    ref = nn.BatchNorm2d(c, momentum=momentum)
    ref.weight.data.uniform_(0.5, 1.5)
    ref.bias.data.uniform_(-0.5, 0.5)
    ours = copy.deepcopy(ref)
    assert use_native_norm(ours) == 1 and type(ours) is NativeBatchNorm
    return ref, ours


def _map(shape, mean=0.0, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(shape) * 2 + mean
    return x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("c,hw,mean,momentum", [(8, (24, 40), 0.0, 0.1), (3, (5, 7), 50.0, 0.1),
                                                (1, (3, 3), 0.0, None), (11, (6, 9), -3.0, 0.1),
                                                (24, (9, 10), 20.0, 0.1), (64, (4, 6), 0.0, 0.3)])
def test_pytorchs_training_step_within_a_bf16_rounding(c, hw, mean, momentum, monkeypatch):
    monkeypatch.setattr(norm, "MAX_CHANNELS", 1024)  # the kernels themselves, at every channel count
    ref, ours = _pair(c, momentum)
    x = _map((3, c, *hw), mean)
    grad = _map((3, c, *hw), seed=1)
    outs = []
    for module in (ref, ours):
        xx = x.clone().requires_grad_()
        for _ in range(2):  # running statistics over two steps
            with torch.autocast("cpu", torch.bfloat16):
                y = module(xx)
        y.backward(grad)
        outs.append((y, xx.grad, module.weight.grad, module.bias.grad))
    (y0, gx0, gw0, gb0), (y1, gx1, gw1, gb1) = outs
    assert y1.dtype == torch.bfloat16 and y1.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(y1.float(), y0.float(), rtol=2**-7, atol=2**-7)
    assert gx1.dtype == torch.bfloat16 and torch.allclose(gx1.float(), gx0.float(), rtol=2**-6, atol=2**-6)
    # exact sums, in fp64, against which both are measured
    xd, gd = x.double(), grad.double()
    xhat = (xd - xd.mean((0, 2, 3), keepdim=True)) / (xd.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt()
    exact_gw, exact_gb = (gd * xhat).sum((0, 2, 3)), gd.sum((0, 2, 3))
    assert (gw1.double() - exact_gw).abs().max() <= (gw0.double() - exact_gw).abs().max() + 1e-3
    assert (gb1.double() - exact_gb).abs().max() <= (gb0.double() - exact_gb).abs().max() + 1e-3
    assert torch.allclose(ours.running_mean, ref.running_mean, rtol=1e-4, atol=1e-5)
    assert torch.allclose(ours.running_var, ref.running_var, rtol=1e-4, atol=1e-5)
    assert ours.num_batches_tracked == ref.num_batches_tracked == 2


def test_eval_mode_other_dtypes_and_wide_maps_are_pytorchs():
    ref, ours = _pair(8)
    x = _map((2, 8, 6, 10))
    assert native_applies(x)
    assert not native_applies(x.float()) and not native_applies(x.contiguous())
    assert not native_applies(_map((2, 16, 6, 10))) and not native_applies(_map((1, 8, 1, 1)))
    for module in (ref, ours):
        module.eval()
    assert torch.equal(ours(x), ref(x))
    wide_ref, wide = _pair(32)
    x = _map((2, 32, 6, 10))
    with torch.autocast("cpu", torch.bfloat16):
        assert torch.equal(wide(x), wide_ref(x))


def test_swapped_into_resunet_and_the_trainer_uses_it(carla_dir, tmp_path):
    net = nets.create("resunet", num_classes=5, base_filters=8)
    keys = list(net.state_dict())
    count = sum(type(m) is nn.BatchNorm2d for m in net.modules())
    assert use_native_norm(net) == count and list(net.state_dict()) == keys
    from roadseg.config import TrainConfig
    from roadseg.training import train
    seen = []
    original = NativeBatchNorm.forward

    def spy(self, x):
        seen.append(self.training and native_applies(x))
        return original(self, x)

    NativeBatchNorm.forward = spy
    try:
        train(TrainConfig(data=str(carla_dir), out=str(tmp_path / "run"), arch="resunet", base_filters=16,
                          size="64x96", epochs=1, batch_size=4, amp=True, progress=False))
    finally:
        NativeBatchNorm.forward = original
    assert any(seen) and not all(seen)  # the 8-channel branch by the kernels, the rest by PyTorch
