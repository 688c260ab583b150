"""Metrics against confusion matrices computed by hand."""
import math

import torch

from roadseg.evaluation.metrics import ConfusionMatrix, scores_from_matrix


def test_confusion_matrix_counts_and_ignore():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 3, 3]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 1]])
    cm = ConfusionMatrix(3, ignore_index=3)
    cm.update(pred, target)
    # row = truth, column = prediction; the two pixels of id 3 are ignored
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_scores_by_hand():
    m = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    s = scores_from_matrix(m)
    assert s["pixel_accuracy"] == 4 / 6
    # IoU: class0 1/(2+2-1)=1/3, class1 2/(2+3-2)=2/3, class2 1/(2+1-1)=1/2
    assert s["per_class_iou"] == [1 / 3, 2 / 3, 1 / 2]
    assert math.isclose(s["mean_iou"], (1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert math.isclose(s["mean_class_accuracy"], (1 / 2 + 1 + 1 / 2) / 3)
    assert math.isclose(s["frequency_weighted_iou"], (2 / 6) * (1 / 3) + (2 / 6) * (2 / 3) + (2 / 6) * (1 / 2))


def test_absent_class_is_left_out_of_means():
    m = torch.tensor([[3, 0, 0], [1, 0, 0], [0, 0, 0]])  # class 2 never in truth nor prediction
    s = scores_from_matrix(m)
    assert math.isnan(s["per_class_iou"][2])
    assert math.isclose(s["mean_iou"], (3 / 4 + 0) / 2)


def test_a_class_predicted_but_absent_from_the_truth_counts_as_zero():
    """Issue 14, item 6: false positives of a class the truth lacks lower the mean IoU."""
    m = torch.tensor([[3, 0, 1], [0, 2, 0], [0, 0, 0]])  # class 2: absent from the truth, predicted once
    s = scores_from_matrix(m)
    assert s["per_class_iou"][2] == 0.0
    assert math.isclose(s["mean_iou"], (3 / 4 + 1 + 0) / 3)
    assert math.isnan(s["per_class_accuracy"][2]) and math.isclose(s["mean_class_accuracy"], (3 / 4 + 1) / 2)


def test_accumulates_over_updates_and_without_ignore():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    cm.update(torch.tensor([1]), torch.tensor([1]))
    assert cm.matrix.tolist() == [[1, 1], [0, 1]]
    assert cm.compute()["pixel_accuracy"] == 2 / 3
