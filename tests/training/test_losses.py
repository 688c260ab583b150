"""Losses: cross-entropy respects ignore ids and weights; Dice is 0 for a perfect prediction."""
import torch

from roadseg.training.losses import cross_entropy, dice_loss, make_loss


def _perfect_logits(target, num_classes):
    return torch.nn.functional.one_hot(target, num_classes).permute(0, 3, 1, 2).float() * 50


def test_ignore_index_pixels_do_not_count():
    target = torch.tensor([[[0, 1], [2, 2]]])
    logits = _perfect_logits(target.clamp(max=1), 3)  # wrong only where target == 2
    assert cross_entropy(logits, target, ignore_index=2) < 1e-6
    assert cross_entropy(logits, target) > 1.0


def test_class_weights_change_the_loss():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    w = torch.tensor([1.0, 5.0, 0.1])
    assert not torch.isclose(cross_entropy(logits, target, weight=w), cross_entropy(logits, target))


def test_dice_perfect_and_wrong():
    target = torch.randint(0, 4, (2, 8, 8))
    assert dice_loss(_perfect_logits(target, 4), target) < 1e-3
    wrong = _perfect_logits((target + 1) % 4, 4)
    assert dice_loss(wrong, target) > 0.9
    target[:, 0] = 9
    assert dice_loss(_perfect_logits(target.clamp(max=3), 4), target, ignore_index=9) < 1e-3


def test_combined_loss_is_sum_and_differentiable():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 4))
    total = make_loss("ce+dice")(logits, target)
    assert torch.isclose(total, cross_entropy(logits, target) + dice_loss(logits, target))
    total.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_channels_last_logits_give_the_same_loss():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 5, 6, 7), torch.randint(0, 5, (2, 6, 7))
    w = torch.rand(5) + 0.1
    for ignore in (None, 4):
        plain = cross_entropy(logits, target, ignore, w)
        fast = cross_entropy(logits.contiguous(memory_format=torch.channels_last), target, ignore, w)
        assert torch.allclose(plain, fast, atol=1e-6)
