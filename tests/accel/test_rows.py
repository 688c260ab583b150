"""The kernels over bf16 logit rows: the fused cross-entropy gives PyTorch's loss and gradient (class
weights, ignore_index, any class count up to 256) and its error for a bad target, and the trainer's loss
takes it only where it applies; the fused soft Dice gives losses.dice_loss's PyTorch value and gradient
and hands bad targets back to it; class_ids is PyTorch's argmax."""
import os

import pytest
import torch

from roadseg.accel import kernels
from roadseg.accel.rows import (class_ids, fused_applies, fused_cross_entropy, fused_dice,
                                reference_cross_entropy)
from roadseg.training import losses
from roadseg.training.losses import make_loss

pytestmark = pytest.mark.skipif(os.environ.get("ROADSEG_KERNELS") == "0",
                                reason="the kernels are off (ROADSEG_KERNELS=0): the suite checks the fallback")


def _logits(classes: int, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    x = (torch.randn(3, classes, 20, 28) * 4).to(torch.bfloat16)
    return x.contiguous(memory_format=torch.channels_last).requires_grad_()


@pytest.mark.parametrize("classes,weighted,ignore", [(23, False, -100), (11, True, 3), (40, True, 255), (1, False, -100)])
def test_loss_and_gradient_are_pytorchs(classes, weighted, ignore):
    x = _logits(classes)
    target = torch.randint(0, classes, (3, 20, 28))
    target[:, :4] = ignore
    weight = torch.rand(classes) + 0.1 if weighted else None
    assert fused_applies(x, target)
    ours = fused_cross_entropy(x, target, weight, ignore)
    theirs = reference_cross_entropy(x, target, weight, ignore)
    (g_ours,) = torch.autograd.grad(ours, x, retain_graph=True)
    (g_theirs,) = torch.autograd.grad(theirs, x, retain_graph=True)
    assert ours.dtype == torch.float32 and torch.allclose(ours, theirs, rtol=1e-6)
    assert g_ours.dtype == torch.bfloat16 and g_ours.is_contiguous(memory_format=torch.channels_last)
    # the same fp32 gradient rounded to bf16 once: at most a last-bit difference, rarely
    assert torch.allclose(g_ours.float(), g_theirs.float(), rtol=2**-7, atol=1e-7)
    assert (g_ours != g_theirs).float().mean() < 0.01
    # scaled by the loss's own gradient (rounded twice then)
    (g_ours,) = torch.autograd.grad(ours * 3, x)
    (g_theirs,) = torch.autograd.grad(theirs * 3, x)
    assert torch.allclose(g_ours.float(), g_theirs.float(), rtol=2**-6, atol=1e-7)
    assert (g_ours[:, :, :4] == 0).all()  # ignored pixels


def test_a_bad_target_raises_pytorchs_error_and_no_pixel_gives_nan():
    x = _logits(5)
    target = torch.randint(0, 5, (3, 20, 28))
    target[1, 2, 3] = 7
    with pytest.raises(IndexError):
        fused_cross_entropy(x, target)
    target[1, 2, 3] = 2**32 + 1
    with pytest.raises(IndexError):
        fused_cross_entropy(x, target)
    everything_ignored = torch.full((3, 20, 28), 2)
    loss = fused_cross_entropy(x, everything_ignored, None, 2)
    assert torch.isnan(loss)


def test_the_trainers_loss_takes_it_only_for_bf16_channels_last_cpu_logits(monkeypatch):
    x = _logits(23)
    target = torch.randint(0, 23, (3, 20, 28))
    assert not fused_applies(x.detach().float(), target)
    assert not fused_applies(x.detach().contiguous(), target)
    assert not fused_applies(x, target.int())
    calls = []
    monkeypatch.setattr("roadseg.training.losses.fused_cross_entropy",
                        lambda *a: calls.append(a) or reference_cross_entropy(a[0], a[1], a[2], a[3]))
    loss = make_loss("ce+dice", ignore_index=None)
    loss(x, target)
    loss(x.detach().float().requires_grad_(), target)
    assert len(calls) == 1
    kernels.library.cache_clear()
    monkeypatch.setenv("ROADSEG_KERNELS", "0")
    try:
        assert not fused_applies(x, target)
    finally:
        kernels.library.cache_clear()


def _pytorch_dice(x, target, ignore, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(losses, "fused_applies", lambda *a: False)
        return losses.dice_loss(x, target, ignore)


@pytest.mark.parametrize("classes,ignore", [(11, 11), (23, None), (40, 255), (1, None), (3, 0)])
def test_dice_loss_and_gradient_are_pytorchs(classes, ignore, monkeypatch):
    x = _logits(classes, seed=classes)
    target = torch.randint(0, classes, (3, 20, 28))
    if ignore is not None:
        target[:, :4] = ignore
    ours = losses.dice_loss(x, target, ignore)
    theirs = _pytorch_dice(x, target, ignore, monkeypatch)
    assert ours.grad_fn.name().startswith("_FusedDice")
    assert ours.dtype == torch.float32 and torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    for scale in (1, 3):
        (g_ours,) = torch.autograd.grad(ours * scale, x, retain_graph=True)
        (g_theirs,) = torch.autograd.grad(theirs * scale, x, retain_graph=True)
        assert g_ours.dtype == torch.bfloat16 and g_ours.is_contiguous(memory_format=torch.channels_last)
        # the same fp32 gradient rounded to bf16 once: a last-bit difference at most
        assert torch.allclose(g_ours.float(), g_theirs.float(), rtol=2**-7, atol=1e-9)
    if ignore is not None and classes > 1:
        assert (g_ours.permute(0, 2, 3, 1)[target == ignore] == 0).all()


def test_dice_hands_bad_targets_and_empty_batches_back_to_pytorch(monkeypatch):
    x = _logits(5)
    target = torch.randint(0, 5, (3, 20, 28))
    target[1, 2, 3] = 7
    assert fused_dice(x, target, 2) is None
    target[1, 2, 3] = -3
    assert fused_dice(x, target, 2) is None
    target[1, 2, 3] = 2**32 + 1  # not a class once cut to 32 bits either
    assert fused_dice(x, target, 2) is None
    assert fused_dice(x, torch.full((3, 20, 28), 2), 2) is None
    loss = losses.dice_loss(x, torch.full((3, 20, 28), 2), 2)  # nothing to score: 0, a zero gradient
    (g,) = torch.autograd.grad(loss, x)
    assert loss == 0 and (g == 0).all()


@pytest.mark.parametrize("classes", [1, 11, 23, 40])
def test_class_ids_are_pytorchs_argmax_ties_included(classes):
    x = _logits(classes).detach()
    x[0, :, 0, 0] = 1.0  # a tie everywhere: the first class wins
    x[1, classes // 2:, 1, 1] = 30.0  # a tie between the upper classes
    assert torch.equal(class_ids(x), x.argmax(1))
    assert torch.equal(class_ids(x.float()), x.float().argmax(1))  # fp32: PyTorch's own
