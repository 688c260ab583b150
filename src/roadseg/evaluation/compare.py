"""The notebook's comparison figures: image | true mask | predicted mask for dataset pairs.

Usage: ``compare_pairs(predictor, pairs, "figures/")``
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..data import Pair, load_pair
from ..inference.predictor import Predictor
from .plots import compare_figure


def compare_pairs(predictor: Predictor, pairs: Sequence[Pair], out: str | Path) -> list[Path]:
    """The notebook's figure (image | true mask | predicted mask) for each pair, at the frame's own
    resolution (the prediction upsampled to it, as `predict` writes it), not the network's input."""
    samples = [load_pair(pair, None) for pair in pairs]  # every file decoded before the first figure
    out = Path(out)
    written = []
    for pair, (image, truth) in zip(pairs, samples):
        pred = predictor.predict(image)
        written.append(compare_figure(image, truth, pred, predictor.table, out / f"{pair.stem}_compare.png",
                                      title=pair.stem))
    return written
