"""The two ends of inference: preprocessing from a checkpoint's input description, and logits to ids,
which upsamples a few classes at a time (issue 14, item 24: a huge frame with many classes)."""
import numpy as np
import torch
from torch.nn import functional as F

from roadseg.inference import processing
from roadseg.inference.processing import Preprocess, upsample_ids


def test_upsampled_ids_equal_the_full_argmax_a_few_classes_at_a_time(monkeypatch):
    torch.manual_seed(0)
    logits = torch.randn(2, 256, 7, 9)
    logits[:, 40] = logits[:, 41]  # ties keep the lower id, as argmax does
    expected = F.interpolate(logits, size=(50, 61), mode="bilinear", align_corners=False).argmax(1)
    widths = []
    real = F.interpolate
    monkeypatch.setattr(processing.F, "interpolate", lambda x, **kw: widths.append(x.shape[1]) or real(x, **kw))
    got = upsample_ids(logits, (50, 61))
    assert got.dtype == np.uint8 and np.array_equal(got, expected.numpy())
    assert max(widths) <= processing.CLASS_CHUNK


def test_preprocess_follows_the_input_description():
    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 12, 3), dtype=np.uint8)
    x = Preprocess({"size": [8, 12]}).tensor(frames)
    assert x.shape == (2, 3, 8, 12) and torch.allclose(x[0, 1], torch.from_numpy(frames[0, :, :, 1]) / 255)
    wide = Preprocess({"size": [8, 12], "range": [-1.0, 1.0]}).tensor(frames)
    assert torch.allclose(wide, x * 2 - 1)
    assert Preprocess({"size": [4, 6]})([frames[0], frames[1, :5]]).shape == (2, 3, 4, 6)
