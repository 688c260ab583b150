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
    """The notebook's figure (image | true mask | predicted mask) for each pair, at the model size."""
    samples = [load_pair(pair, predictor.size, predictor.resize) for pair in pairs]
    out = Path(out)
    written = []
    for pair, (image, truth) in zip(pairs, samples):
        pred = predictor.ids(image[None])[0]
        written.append(compare_figure(image, truth, pred, predictor.table, out / f"{pair.stem}_compare.png",
                                      title=pair.stem))
    return written
