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


def test_lovasz_equals_one_minus_iou_at_hard_predictions():
    torch.manual_seed(1)
    target, pred = torch.randint(0, 4, (2, 6, 6)), torch.randint(0, 4, (2, 6, 6))
    pred[0, 0] = 3  # every class is predicted somewhere
    from roadseg.training.losses import lovasz_softmax
    expected = []
    for c in target.unique().tolist():
        t, p = target == c, pred == c
        expected.append(1 - (t & p).sum().item() / (t | p).sum().item())
    got = lovasz_softmax(_perfect_logits(pred, 4), target)
    assert abs(got.item() - sum(expected) / len(expected)) < 1e-4
    assert lovasz_softmax(_perfect_logits(target, 4), target).item() < 1e-4


def test_ohem_keeps_only_hard_pixels_but_at_least_a_share():
    from roadseg.training.losses import ohem_cross_entropy
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    logits = _perfect_logits(target, 3)
    logits[0, :, 0, :2] = 0  # two uncertain pixels (p = 1/3), the rest certain
    hard = torch.nn.functional.cross_entropy(logits[0, :, 0, :2].T, target[0, 0, :2])
    assert abs(ohem_cross_entropy(logits, target, min_fraction=1 / 64) - hard) < 1e-6
    # asked to keep at least a quarter of the pixels: the 16 highest losses, the 2 hard ones among them
    kept = ohem_cross_entropy(logits, target, min_fraction=1 / 4)
    assert abs(kept - hard * 2 / 16) < 1e-6


def test_every_named_loss_trains(tmp_path):
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 8, 8, requires_grad=True)
    target = torch.randint(0, 5, (2, 8, 8))  # 4 = ignored
    from roadseg.training.losses import LOSSES
    for name in LOSSES:
        loss = make_loss(name, ignore_index=4)(logits, target)
        loss.backward()
        assert torch.isfinite(loss) and logits.grad.abs().sum() > 0
        logits.grad = None
