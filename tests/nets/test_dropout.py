"""roadseg's Dropout: PyTorch's semantics (keep rate, scaling, gradient, eval mode) with its own mask."""
import pytest
import torch
from torch import nn

from roadseg.nets.dropout import Dropout, keep_mask


def test_each_of_the_four_lanes_of_a_draw_keeps_one_minus_p():
    torch.manual_seed(0)
    mask = keep_mask(torch.empty(4_000_000), 0.3)
    lanes = mask.view(-1, 4).float().mean(0)  # a lane missing a random bit would keep 0.4 or 1.0
    assert torch.allclose(lanes, torch.full((4,), 0.7), atol=0.002), lanes


@pytest.mark.parametrize("channels_last", [False, True])
def test_kept_values_are_scaled_dropped_ones_are_zero_and_the_gradient_follows(channels_last):
    torch.manual_seed(0)
    x = torch.rand(8, 16, 12, 16) + 0.5
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    y = Dropout(0.25).train()(x)
    kept = y != 0
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert abs(kept.float().mean().item() - 0.75) < 0.02
    assert torch.allclose(y[kept], x[kept] / 0.75)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(grad, kept.float() / 0.75)


def test_bf16_scaling_matches_pytorchs_dropout():
    x = torch.ones(64, 64, dtype=torch.bfloat16)
    ours = Dropout(0.3).train()(x)
    theirs = nn.functional.dropout(x, 0.3, True)
    assert set(ours.unique().tolist()) == set(theirs.unique().tolist())


def test_eval_mode_and_the_same_seed():
    x = torch.rand(2, 4, 8, 8)
    assert torch.equal(Dropout(0.3).eval()(x), x)
    torch.manual_seed(1)
    a = Dropout(0.3).train()(x)
    torch.manual_seed(1)
    assert torch.equal(Dropout(0.3).train()(x), a)
