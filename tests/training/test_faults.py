"""Fault injection: a real training process killed (SIGKILL) or stopped (SIGTERM) at several points
resumes to exactly the weights of an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from roadseg.checkpoint import load_checkpoint
from roadseg.data.synth import write_dataset

EPOCHS = 7


def _train(data, out, *extra):
    args = [sys.executable, "-m", "roadseg", "train", "--data", str(data), "--out", str(out),
            "--epochs", str(EPOCHS), "--size", "48x64", "--crop", "32x48", "--augment", "--batch-norm",
            "--base-filters", "4", "--depth", "3", "--batch-size", "4", "--schedule", "poly",
            "--optimizer", "adamw", "--weight-decay", "0.01", "--no-progress", *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _rows(out):
    path = out / "metrics.csv"
    return max(len(path.read_text().splitlines()) - 1, 0) if path.exists() else 0


def _stop_after(proc, out, epochs, delay, sig):
    """Send `sig` once `epochs` epochs are on disk plus `delay` seconds (or earlier if it ends)."""
    deadline = time.time() + 120
    while _rows(out) < epochs and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("faults"), 24, size=(96, 128), seed=11)


def test_sigkill_and_sigterm_then_resume_bit_for_bit(data, tmp_path):
    ref = tmp_path / "ref"
    proc = _train(data, ref)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    out = tmp_path / "run"
    proc = _train(data, out)
    # five SIGKILLs at different points (mid-epoch, right after a checkpoint, during a write...)
    kill_points = [(1, 0.0), (2, 0.05), (3, 0.013), (4, 0.11), (5, 0.002)]
    for i, (epochs, delay) in enumerate(kill_points):
        code, err = _stop_after(proc, out, epochs, delay, signal.SIGKILL)
        assert code == -signal.SIGKILL, f"point {i}: run ended before the kill: {err}"
        ckpt = load_checkpoint(out / "last.pt")  # never torn
        assert ckpt["training"]["epoch"] >= epochs - 1
        proc = _train(data, out, "--resume", str(out))
    code, err = _stop_after(proc, out, 6, 0.02, signal.SIGTERM)
    if code != 0:  # the run may have finished before the signal landed
        assert code == 128 + signal.SIGTERM, err
        assert "SIGTERM received" in err and f"roadseg train --resume {out}" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        proc = _train(data, out, "--resume", str(out))
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    a = load_checkpoint(ref / "last.pt")
    b = load_checkpoint(out / "last.pt")
    assert b["training"]["epoch"] == EPOCHS
    for key, value in a["model"]["state_dict"].items():
        assert torch.equal(value, b["model"]["state_dict"][key]), key
    assert [r["train_loss"] for r in a["training"]["history"]] == [r["train_loss"] for r in b["training"]["history"]]
    assert not list(out.glob(".*.tmp"))
