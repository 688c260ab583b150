"""torchrun with 2 gloo processes on the CPU trains like one process with the same global batch."""
import os
import subprocess
import sys

import pytest
import torch

from roadseg.checkpoint import load_checkpoint

# fp32: bf16 rounding differs with the per-rank batch, beyond the tolerance compared here. SGD, not Adam:
# Adam divides each step by the gradient's own size, so float noise on a near-zero gradient becomes a
# step of lr (torch 2.11 with --distill: losses equal to 1e-7, weights 1e-3 apart after 2 epochs).
ARGS = ["--epochs", "2", "--size", "32x48", "--base-filters", "4", "--depth", "3", "--batch-size", "4",
        "--val-fraction", "0.34", "--dropout", "0", "--optimizer", "sgd", "--lr", "0.05", "--no-progress",
        "--no-amp"]


def _run(cmd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.parametrize("distill", [False, True])
def test_two_gloo_processes_match_one(distill, carla_dir, trained, tmp_path):
    """With --distill too: each rank's teacher labels its own frames, and the term, a mean over the rank's
    pixels like the cross-entropy, averages over ranks to the single process's."""
    single, multi = tmp_path / "single", tmp_path / "multi"
    args = [*ARGS, "--distill", str(trained / "best.pt")] if distill else ARGS
    _run([sys.executable, "-m", "roadseg", "train", "--data", str(carla_dir), "--out", str(single), *args])
    proc = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                 "-m", "roadseg", "train", "--data", str(carla_dir), "--out", str(multi), *args])
    assert proc.stdout.count("run written to") == 1  # rank 0 alone reports and writes
    a, b = load_checkpoint(single / "last.pt"), load_checkpoint(multi / "last.pt")
    assert a["data"]["train_images"] == 8 and b["training"]["epoch"] == 2
    for key, value in a["model"]["state_dict"].items():
        assert torch.allclose(value, b["model"]["state_dict"][key], atol=2e-4, rtol=1e-3), key
    for ra, rb in zip(a["training"]["history"], b["training"]["history"]):
        # the confusion matrix is summed over ranks: validation covers every image exactly once
        assert abs(ra["train_loss"] - rb["train_loss"]) < 1e-3
        assert abs(ra["val_pixel_accuracy"] - rb["val_pixel_accuracy"]) < 1e-3
    assert not list(multi.glob(".*.tmp"))


def test_fewer_val_frames_than_ranks_does_not_hang(carla_dir, tmp_path):
    """One val frame for two processes: the rank without one still finishes its epoch (batch norm,
    whose buffers DDP would otherwise synchronise in every forward pass)."""
    out = tmp_path / "r"
    args = [a if a != "0.34" else "0.05" for a in ARGS] + ["--batch-norm"]
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
          "-m", "roadseg", "train", "--data", str(carla_dir), "--out", str(out), *args])
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["data"]["val_images"] == 1 and ckpt["training"]["history"][-1]["val_pixel_accuracy"] is not None


@pytest.mark.parametrize("arch, size", [("fastunet", "64x96"), ("dabnet", "32x48")])
def test_every_network_trains_under_torchrun(arch, size, carla_dir, tmp_path):
    """Two processes, batch 2 each, and a last batch of one frame per rank (batch norm at 1x1)."""
    out = tmp_path / arch
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "roadseg",
          "train", "--data", str(carla_dir), "--out", str(out), "--arch", arch, "--size", size, "--epochs", "1",
          "--batch-size", "4", "--no-progress"])  # 10 training frames: 5 a rank, batches of 2, 2 and 1
    assert load_checkpoint(out / "last.pt")["model"]["arch"] == arch
