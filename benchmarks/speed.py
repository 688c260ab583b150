"""Speed benchmark: training and inference images/s and single-frame latency of the notebook's
U-Net, for roadseg as users run it and for a TensorFlow/Keras reference of the same network measured
in the same run. Prints each figure, the ratio roadseg / reference, and achieved GFLOP/s as a share
of a measured fp32 matrix-product peak.

Sizes: 96x128 (train batch 32) and 352x480 (train batch 8; CamVid's 360x480 is not divisible by 16,
so the network, in Keras as in roadseg, takes the nearest multiple). Inference uses batch 32.

Usage:
    python benchmarks/speed.py --reference keras                 # both sizes, creates .bench-venv/keras
    python benchmarks/speed.py --size 96x128 --json speed.json   # one size, no reference
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from roadseg.classes import class_table
from roadseg.config import TrainConfig
from roadseg.data import Layout, Pair, SampleCache
from roadseg.predict import Predictor
from roadseg.train import PreparedData, Trainer

ROOT = Path(__file__).resolve().parent.parent
KERAS_VENV = ROOT / ".bench-venv" / "keras"


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Measured fp32 GFLOP/s of a large matrix product."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    best = min(_time(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def forward_gflop(model: torch.nn.Module, size: tuple[int, int]) -> float:
    """GFLOP of one forward pass for one image."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 3, *size))
    return counter.get_total_flops() / 1e9


def roadseg_figures(size: tuple[int, int], repeats: int, backend: str = "torch") -> dict:
    """roadseg's own code paths: Trainer epochs on cached samples, Predictor on uint8 frames."""
    h, w = size
    train_batch = 32 if h * w <= 96 * 128 else 8
    rng = np.random.default_rng(0)
    n = train_batch * 4
    pairs = [Pair(Path(f"frame{i}.png"), Path(f"frame{i}.png")) for i in range(n)]
    cache = SampleCache(pairs, torch.from_numpy(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)),
                        torch.from_numpy(rng.integers(0, 23, (n, h, w), dtype=np.uint8)))
    cfg = TrainConfig(size=f"{h}x{w}", batch_size=train_batch, progress=False, device="cpu")
    data = PreparedData(Layout(Path("."), "carla", {}), class_table("carla"), size, cache, cache)
    trainer = Trainer(cfg, data, Path("unused"))
    trainer._run_epoch(cache, train=True)  # warm-up
    train = [n / _time(lambda: trainer._run_epoch(cache, train=True)) for _ in range(repeats)]
    model = trainer.model.eval()
    predictor = Predictor(model, data.table, size, device="cpu", backend=backend,
                          meta={**trainer.state(with_optimizer=False)})
    batch = cache.images[:32].numpy() if n >= 32 else np.concatenate([cache.images.numpy()] * 4)[:32]
    predictor.logits(batch)
    infer = [32 / _time(lambda: predictor.logits(batch)) for _ in range(repeats)]
    frame = batch[0]
    predictor.predict(frame)
    latency = [1000 * _time(lambda: predictor.predict(frame)) for _ in range(repeats * 3)]
    return {"train_images_per_s": statistics.median(train) if backend == "torch" else None,
            "train_batch": train_batch, "infer_images_per_s": statistics.median(infer),
            "latency_ms": statistics.median(latency)}


def keras_figures(size: tuple[int, int], repeats: int) -> dict:
    """Run the Keras reference in its own virtualenv (created on first use)."""
    python = KERAS_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {KERAS_VENV} with tensorflow-cpu (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(KERAS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "tensorflow-cpu"], check=True)
    out = subprocess.run([str(python), str(ROOT / "benchmarks" / "keras_reference.py"), f"{size[0]}x{size[1]}",
                          str(repeats)], capture_output=True, text=True, env={"TF_CPP_MIN_LOG_LEVEL": "2",
                                                                              "PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        raise SystemExit(f"Keras reference failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", action="append", help="HxW (repeatable); default 96x128 and 352x480")
    p.add_argument("--reference", choices=["keras", "none"], default="none")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="write the figures here")
    a = p.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in (a.size or ["96x128", "352x480"])]
    peak = matmul_peak()
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"fp32 matmul peak {peak:.0f} GFLOP/s")
    from roadseg.model import UNet
    results: dict = {"peak_gflops": peak, "sizes": {}}
    for size in sizes:
        key = f"{size[0]}x{size[1]}"
        fwd = forward_gflop(UNet(), size)
        mine = roadseg_figures(size, a.repeats)
        onnx = roadseg_figures(size, a.repeats, backend="onnx")
        row = {"forward_gflop": fwd, "roadseg": mine, "roadseg_onnx": onnx}
        best_infer = max(mine["infer_images_per_s"], onnx["infer_images_per_s"])
        print(f"\n{key}: {fwd:.2f} GFLOP forward per image")
        print(f"  roadseg train   {mine['train_images_per_s']:7.2f} img/s (batch {mine['train_batch']}), "
              f"{mine['train_images_per_s'] * 3 * fwd / peak:.0%} of peak")
        print(f"  roadseg infer   {mine['infer_images_per_s']:7.2f} img/s torch, {onnx['infer_images_per_s']:.2f} onnx "
              f"(batch 32), {best_infer * fwd / peak:.0%} of peak (effective: fast conv algorithms can exceed it)")
        print(f"  roadseg latency {mine['latency_ms']:7.1f} ms torch, {onnx['latency_ms']:.1f} ms onnx")
        if a.reference == "keras":
            ref = keras_figures(size, a.repeats)
            row["keras"] = ref
            row["train_ratio"] = mine["train_images_per_s"] / ref["train_images_per_s"]
            row["infer_ratio"] = best_infer / ref["infer_images_per_s"]
            row["latency_ratio"] = ref["latency_ms"] / min(mine["latency_ms"], onnx["latency_ms"])
            print(f"  keras train     {ref['train_images_per_s']:7.2f} img/s  -> ratio {row['train_ratio']:.2f}")
            print(f"  keras infer     {ref['infer_images_per_s']:7.2f} img/s  -> ratio {row['infer_ratio']:.2f}")
            print(f"  keras latency   {ref['latency_ms']:7.1f} ms     -> speed-up {row['latency_ratio']:.2f}")
        results["sizes"][key] = row
    if a.json:
        if len(sizes) == 1:
            only = results["sizes"][f"{sizes[0][0]}x{sizes[0][1]}"]
            results.update({k: only[k] for k in ("train_ratio", "infer_ratio") if k in only})
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
