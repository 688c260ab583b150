"""Shared fixtures: small synthesised CARLA-format datasets and a tiny trained checkpoint, on real files."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from roadseg.config import TrainConfig
from roadseg.data.synth import write_dataset
from roadseg.training import train

# The suite builds roadseg's C++ kernels into a folder of its own, never the developer's ~/.cache.
os.environ["ROADSEG_CACHE_DIR"] = tempfile.mkdtemp(prefix="roadseg-test-cache-")
atexit.register(shutil.rmtree, os.environ["ROADSEG_CACHE_DIR"], ignore_errors=True)

TINY = dict(base_filters=4, depth=3, size="32x48", batch_size=4, progress=False, lr=3e-3)


def tiny_config(data: Path, out: Path, **kw) -> TrainConfig:
    """Training settings small enough for a test (a 4-filter, depth-3 U-Net at 32x48)."""
    return TrainConfig(data=str(data), out=str(out), **{**TINY, "epochs": 2, **kw})


@pytest.fixture(scope="session")
def carla_dir(tmp_path_factory) -> Path:
    """12 synthetic frames at 120x160 in CARLA layout."""
    root = tmp_path_factory.mktemp("carla")
    return write_dataset(root, 12, size=(120, 160), seed=3)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, carla_dir) -> Path:
    """A run folder of a tiny model trained 2 epochs on carla_dir."""
    out = tmp_path_factory.mktemp("run") / "run"
    return train(tiny_config(carla_dir, out))


@pytest.fixture
def copy_carla(tmp_path, carla_dir):
    """A writable copy of carla_dir, for tests that break it."""
    import shutil

    def make() -> Path:
        dst = tmp_path / "data"
        shutil.copytree(carla_dir, dst)
        return dst
    return make


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path
