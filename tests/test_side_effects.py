"""Importing roadseg and loading a model change nothing in the caller's process: matplotlib's backend
stays as it was (chosen or not), glibc's malloc keeps its settings, no C++ is compiled; only the
CLI's commands (and an explicit `roadseg.keep_freed_memory()`) apply the allocator setting.
Each check runs in a fresh process, since these settings are process-wide."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

PROBE = """
import json, resource, sys
import matplotlib
user_backend = sys.argv[1]
if user_backend != "none":
    matplotlib.use(user_backend)
before = matplotlib.rcParams._get_backend_or_none()
import numpy as np, torch
import roadseg
from roadseg.evaluation.plots import plot_curves
predictor = roadseg.load("camvid-unet", device="cpu")
from roadseg.accel import kernels
compiled = kernels.library.cache_info().currsize
predictor.predict(np.zeros((40, 60, 3), np.uint8)) if sys.argv[2] == "predict" else None
plot_curves([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2}], sys.argv[3])
after = matplotlib.rcParams._get_backend_or_none()
conv = torch.nn.Conv2d(16, 16, 3, padding=1)
faults = []
for _ in range(5):  # large activations made, used, freed, made again: default glibc faults them in again
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.rand(4, 16, 384, 384, requires_grad=True)
    conv(torch.relu(conv(x))).sum().backward()
    del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
print(json.dumps({"before": before, "after": after, "kept": roadseg.device._kept, "compiled_on_load": compiled,
                  "faults": faults, "pyplot": "matplotlib.pyplot" in sys.modules}))
"""


def probe(tmp_path, backend: str, predict: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["ROADSEG_CACHE_DIR"] = str(tmp_path / "cache")
    out = subprocess.run([sys.executable, "-c", PROBE, backend, "predict" if predict else "load",
                          str(tmp_path / "curves.png")], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["none", "svg"])
def test_matplotlib_backend_is_left_as_the_user_had_it(tmp_path, backend):
    result = probe(tmp_path, backend, predict=False)
    assert result["after"] == result["before"] == (None if backend == "none" else "svg")
    assert not result["pyplot"]
    assert (tmp_path / "curves.png").stat().st_size > 1000  # the figure was drawn all the same


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_malloc_settings_and_kernels_are_left_alone(tmp_path):
    result = probe(tmp_path, "none", predict=True)
    assert not result["kept"] and result["compiled_on_load"] == 0
    pages = 38 * 2**20 // 4096  # one activation: glibc's default maps it afresh every step
    assert min(result["faults"][2:]) > 2 * pages
