"""Optimizers, schedules and class weights."""
import json

import pytest
import torch

from roadseg.errors import InputError
from roadseg.data.class_weights import class_weights, id_counts
from roadseg.training.optim import lr_factor, make_optimizer, make_scheduler


def test_median_frequency_by_hand():
    # class 0: 6 px in 2 images of 4 px (freq 6/8); class 1: 1 px in 1 image (1/4); class 2: 1 px (1/4)
    masks = torch.tensor([[[0, 0], [0, 1]], [[0, 0], [0, 2]]])
    w = class_weights("median-frequency", id_counts(masks), num_classes=4)
    assert torch.allclose(w, torch.tensor([0.25 / 0.75, 1.0, 1.0, 0.0]))


def test_median_frequency_ignores_ignore_id():
    masks = torch.tensor([[[0, 1], [3, 3]]])
    w = class_weights("median-frequency", id_counts(masks), num_classes=3, ignore_index=3)
    assert torch.allclose(w, torch.tensor([1.0, 1.0, 0.0]))


def test_weights_file(tmp_path):
    (tmp_path / "w.json").write_text(json.dumps([1, 2, 3]))
    assert class_weights(str(tmp_path / "w.json"), id_counts(torch.zeros(1, 2, 2)), 3).tolist() == [1, 2, 3]
    with pytest.raises(InputError, match="list of 4 numbers"):
        class_weights(str(tmp_path / "w.json"), id_counts(torch.zeros(1, 2, 2)), 4)
    assert class_weights("none", id_counts(torch.zeros(1, 2, 2)), 3) is None


def test_poly_with_warmup():
    assert lr_factor(0, 100, 10, "poly") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "poly") == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, "poly") == pytest.approx(1.0)
    assert lr_factor(100, 100, 10, "poly") == pytest.approx(0.0)
    assert lr_factor(55, 100, 10, "poly") == pytest.approx(0.5 ** 0.9)


@pytest.mark.parametrize("kind", ["none", "poly", "cosine", "onecycle"])
def test_schedulers_step_and_roundtrip(kind):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer([p], "adamw", 0.01, 1e-4)
    sched = make_scheduler(opt, kind, epochs=3, steps_per_epoch=4, warmup_epochs=1)
    lrs = []
    for _ in range(12):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert all(lr >= 0 for lr in lrs)
    opt2 = make_optimizer([p], "adamw", 0.01, 1e-4)
    sched2 = make_scheduler(opt2, kind, epochs=3, steps_per_epoch=4, warmup_epochs=1)
    sched2.load_state_dict(sched.state_dict())
    assert sched2.last_epoch == sched.last_epoch


def test_unknown_names():
    with pytest.raises(InputError):
        make_optimizer([torch.nn.Parameter(torch.zeros(1))], "rmsprop", 0.1)


def test_cpu_optimizers_are_fused_and_step_like_the_loop():
    import torch
    from roadseg.training.optim import make_optimizer
    for name in ("adam", "adamw", "sgd"):
        torch.manual_seed(0)
        a, b = torch.nn.Linear(6, 4), torch.nn.Linear(6, 4)
        b.load_state_dict(a.state_dict())
        fused = make_optimizer(a.parameters(), name, 1e-2, 1e-3)
        loop = getattr(torch.optim, {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}[name])(
            b.parameters(), **({"lr": 1e-2, "weight_decay": 1e-3} | ({"momentum": 0.9, "nesterov": True} if name == "sgd" else {})))
        assert fused.defaults["fused"] is True
        x = torch.randn(8, 6)
        for _ in range(3):
            for model, opt in ((a, fused), (b, loop)):
                opt.zero_grad()
                model(x).square().sum().backward()
                opt.step()
        assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))
