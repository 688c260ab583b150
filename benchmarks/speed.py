"""Speed benchmark: training and inference images/s and single-frame latency of the notebook's
U-Net, for roadseg as users run it and for a TensorFlow/Keras reference of the same network measured
in the same run. Prints each figure, the ratio roadseg / reference, and achieved GFLOP/s as a share
of a measured fp32 matrix-product peak.

roadseg is measured on its own code paths: training runs `Trainer` epochs on cached uint8 samples
(the loop `roadseg train` runs; default settings: mixed precision where the CPU has native bf16;
--no-amp: fp32, whose wide convs run as Winograd; fp32-eager: --no-amp --no-winograd), inference
runs `Predictor` on uint8 frames with each backend (torch: roadseg's Winograd network, as `roadseg
predict` runs it on the CPU; torch-eager: PyTorch's own modules, --no-winograd; onnxruntime;
OpenVINO; all fp32), and INT8 runs the `roadseg export --format onnx-int8` model (calibrated on
random frames: speed does not depend on the weights' values) in OpenVINO and
onnxruntime. Keras runs model.fit on NumPy arrays and a tf.function forward, as the notebook does.
Every figure is a median over --repeats timed runs after a warm-up run; a training run is one epoch
of --steps steps.

At equal precision: on CPUs with native bf16 (AVX512-BF16, AMX) the bf16 peers are measured too, plain
PyTorch eager under torch.autocast(bfloat16) (the loop a PyTorch user writes), the same loop through
torch.compile (compile time not counted) and, with --reference
keras, Keras under the mixed_bfloat16 policy; roadseg's default training (bf16 autocast) and its
`--precision bf16` inference are divided by the best of them (`train_ratio_same_precision`,
`infer_ratio_same_precision` in --json), and bf16 figures are shown as a share of a measured bf16
matrix-product peak. Without native bf16 the same-precision ratios are fp32 against Keras fp32.

Sizes: 96x128 (train batch 32) and 352x480 (train batch 8; CamVid's 360x480 is not divisible by 16,
so the network, in Keras as in roadseg, takes the nearest multiple). Inference uses batch 32.

Usage:
    python benchmarks/speed.py --reference keras                 # both sizes, creates .bench-venv/keras
    python benchmarks/speed.py --size 96x128 --json speed.json   # one size, no reference
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from roadseg.checkpoint import build_model
from roadseg.classes import class_table
from roadseg.config import TrainConfig
from roadseg.data import Layout, Pair, SampleCache
from roadseg.data.imageio import atomic_write
from roadseg.device import amp_dtype, cpu_has_native_bf16, cpu_name, keep_freed_memory, release_freed_memory
from roadseg.errors import InputError
from roadseg.inference import Predictor, Preprocess, make_engine
from roadseg.inference.export import onnx_bytes, quantize_int8
from roadseg.nets import UNet
from roadseg.training import PreparedData, Trainer
from roadseg.training.state import run_checkpoint

ROOT = Path(__file__).resolve().parent.parent
KERAS_VENV = ROOT / ".bench-venv" / "keras"
INFER_BATCH = 32


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _rate(fn: Callable[[], object], images: int, repeats: int) -> float:
    """Median images/s of `fn` (which handles `images` images) after one warm-up call."""
    fn()
    return statistics.median(images / _time(fn) for _ in range(repeats))


def matmul_peak(repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Measured GFLOP/s of a large matrix product in `dtype`: the best of torch.mm (MKL) and the same
    product as a 1x1 convolution (oneDNN; MKL does not use AVX-512 on every vendor's CPU)."""
    n = 2048
    a, b = torch.rand(n, n, dtype=dtype), torch.rand(n, n, dtype=dtype)
    x = torch.rand(1, n, 32, 64, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.rand(n, n, 1, 1, dtype=dtype).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        mm = 2 * n**3 / min(_time(lambda: a @ b) for _ in range(repeats + 1)) / 1e9
        conv = 2 * n * n * 32 * 64 / min(_time(lambda: torch.nn.functional.conv2d(x, w))
                                         for _ in range(repeats + 1)) / 1e9
    return max(mm, conv)


def forward_gflop(size: tuple[int, int]) -> float:
    """GFLOP of one forward pass for one image."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        UNet()(torch.rand(1, 3, *size))
    return counter.get_total_flops() / 1e9


def _cache(n: int, size: tuple[int, int], seed: int = 0) -> SampleCache:
    rng = np.random.default_rng(seed)
    pairs = [Pair(Path(f"frame{i}.png"), Path(f"frame{i}.png")) for i in range(n)]
    return SampleCache(pairs, torch.from_numpy(rng.integers(0, 256, (n, *size, 3), dtype=np.uint8)),
                       torch.from_numpy(rng.integers(0, 23, (n, *size), dtype=np.uint8)))


def train_rate(size: tuple[int, int], steps: int, repeats: int, amp: bool,
               winograd: bool = True) -> tuple[dict, Trainer]:
    """images/s of Trainer epochs (the `roadseg train` loop) on cached samples, and the trainer."""
    batch = 32 if size[0] * size[1] <= 96 * 128 else 8
    cache = _cache(batch * steps, size)
    cfg = TrainConfig(size=f"{size[0]}x{size[1]}", batch_size=batch, progress=False, device="cpu", amp=amp,
                      winograd=winograd)
    data = PreparedData(Layout(Path("."), "carla", {}), class_table("carla"), size, cache, cache)
    trainer = Trainer(cfg, data, Path("unused"))
    rate = _rate(lambda: trainer._run_epoch(cache, train=True), len(cache), repeats)
    precision = "bf16 mixed" if amp and amp_dtype(trainer.device) == torch.bfloat16 else "fp32"
    return {"images_per_s": rate, "batch": batch, "precision": precision}, trainer


def _plain_up(block: torch.nn.Module, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """UpBlock.forward as a PyTorch user writes it: nn.ConvTranspose2d, cropped to the skip."""
    up = block.up(x)[:, :, : skip.shape[2], : skip.shape[3]]
    return block.conv(torch.cat([up, skip], dim=1))


def plain_unet() -> UNet:
    """The notebook's U-Net with PyTorch's own layers only: roadseg.nets.UNet with each upsampling
    through nn.ConvTranspose2d (roadseg computes it as phase convolutions in bf16 on the CPU) and
    PyTorch's nn.Dropout (roadseg draws its CPU mask faster)."""
    model = UNet()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.__class__ = torch.nn.Dropout
    for block in model.decoder:
        block.forward = types.MethodType(_plain_up, block)
    return model


def plain_torch_figures(size: tuple[int, int], steps: int, repeats: int, compiled: bool = False) -> dict:
    """The bf16 peer a PyTorch user writes: the same U-Net in PyTorch's own layers (`plain_unet`),
    Adam (its default implementation), cross-entropy, torch.autocast(bfloat16), channels-last, on
    float tensors already in memory; inference under no_grad and autocast, batch INFER_BATCH and 1.
    `compiled`: the same through torch.compile (its CPU backend; the warm-up call compiles, and the
    seconds it took are returned)."""
    batch = 32 if size[0] * size[1] <= 96 * 128 else 8
    torch.manual_seed(0)
    model = plain_unet().to(memory_format=torch.channels_last)
    run = torch.compile(model) if compiled else model
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(batch, 3, *size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 23, (batch, *size))

    def epoch() -> None:
        model.train()
        for _ in range(steps):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(run(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    compile_s = _time(epoch) if compiled else None  # compiling is not counted in the rate
    train = _rate(epoch, batch * steps, repeats)
    model.eval()
    xb = torch.rand(INFER_BATCH, 3, *size).contiguous(memory_format=torch.channels_last)

    def forward(t: torch.Tensor) -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            run(t)

    if compiled:
        compile_s += _time(lambda: forward(xb)) + _time(lambda: forward(xb[:1]))
    return {"train": {"images_per_s": train, "batch": batch, "precision": "bf16 mixed"},
            "infer": {"images_per_s": _rate(lambda: forward(xb), INFER_BATCH, repeats),
                      "latency_ms": 1000 / _rate(lambda: forward(xb[:1]), 1, repeats * 3)},
            **({"compile_seconds": compile_s} if compiled else {})}


def infer_figures(predictor: Predictor, frames: np.ndarray, repeats: int) -> dict:
    """Batch images/s and single-frame latency (ms) of a Predictor on uint8 frames at the model size."""
    latency = 1000 / _rate(lambda: predictor.predict(frames[0]), 1, repeats * 3)
    return {"images_per_s": _rate(lambda: predictor.logits(frames), len(frames), repeats), "latency_ms": latency}


def int8_figures(fp32_onnx: bytes, meta: dict, frames: np.ndarray, repeats: int) -> dict:
    """INT8 (static QDQ, the `roadseg export --format onnx-int8` path) in OpenVINO and onnxruntime."""
    preprocess = Preprocess(meta["input"])
    data = quantize_int8(fp32_onnx, frames[:8], preprocess)
    x = preprocess.tensor(frames)
    out = {}
    for backend in ("openvino", "onnx"):
        try:
            engine = make_engine(backend, onnx=data)
        except Exception as e:  # an optional extra that is missing
            print(f"  (int8 {backend} skipped: {e})")
            continue
        out[backend] = {"images_per_s": _rate(lambda: engine(x), len(x), repeats),
                        "latency_ms": 1000 / _rate(lambda: engine(x[:1]), 1, repeats * 3)}
    return out


def roadseg_figures(size: tuple[int, int], steps: int, repeats: int) -> dict:
    """All roadseg figures for one size."""
    default, trainer = train_rate(size, steps, repeats, amp=True)
    result = {"train": {"default": default}}
    release_freed_memory()  # between stages: kept heap blocks of each stage's shapes would add up
    if default["precision"] != "fp32":
        result["train"]["fp32"] = train_rate(size, steps, repeats, amp=False)[0]
        release_freed_memory()
    result["train"]["fp32-eager"] = train_rate(size, steps, repeats, amp=False, winograd=False)[0]  # --no-winograd
    release_freed_memory()
    meta = run_checkpoint(trainer, with_optimizer=False)
    try:
        onnx = onnx_bytes(meta)  # exported once, run by both ONNX engines and quantised for INT8
    except InputError as e:  # the onnx extra is not installed: skip what needs it, with a note
        print(f"  (onnx, openvino and int8 skipped: {e})")
        onnx = None
    frames = _cache(INFER_BATCH, size, seed=1).images.numpy()
    result["infer"] = {}
    names = ["torch", "torch-eager", "onnx", "openvino"] + (["torch-bf16"] if cpu_has_native_bf16() else [])
    for name in names:  # torch: the Winograd network; eager: nn.Modules; bf16: --precision bf16
        backend = name.split("-")[0]
        if backend != "torch" and onnx is None:
            continue
        try:
            engine = make_engine(backend, model=build_model(meta) if backend == "torch" else None,
                                 onnx=None if backend == "torch" else onnx, device="cpu", winograd=name == "torch",
                                 precision="bf16" if name == "torch-bf16" else "fp32")
            predictor = Predictor(engine, trainer.data.table, meta["input"], meta)
        except Exception as e:  # an optional extra that is missing
            print(f"  ({name} skipped: {e})")
            continue
        result["infer"][name] = infer_figures(predictor, frames, repeats)
        del engine, predictor
        release_freed_memory()
    result["int8"] = int8_figures(onnx, meta, frames, repeats) if onnx is not None else {}
    release_freed_memory()
    if cpu_has_native_bf16():
        result["plain_torch_bf16"] = plain_torch_figures(size, steps, repeats)
        release_freed_memory()
        result["torch_compile_bf16"] = plain_torch_figures(size, steps, repeats, compiled=True)
    return result


def keras_figures(size: tuple[int, int], steps: int, repeats: int, policy: str = "float32") -> dict:
    """Run the Keras reference in its own virtualenv (created on first use) under a Keras dtype policy
    (float32, or mixed_bfloat16: Keras' bf16 mixed precision)."""
    python = KERAS_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {KERAS_VENV} with tensorflow-cpu (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(KERAS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "tensorflow-cpu"], check=True)
    out = subprocess.run([str(python), str(ROOT / "benchmarks" / "keras_reference.py"), f"{size[0]}x{size[1]}",
                          str(repeats), str(steps), policy], capture_output=True, text=True,
                         env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        raise SystemExit(f"Keras reference failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def same_precision(mine: dict, ref: dict | None, ref_bf16: dict | None, fwd: float, peak_bf16: float | None) -> dict:
    """roadseg against the best peer of the same precision: bf16 where the CPU has it natively (Keras
    mixed_bfloat16, plain PyTorch autocast, the same through torch.compile), else fp32 (Keras fp32);
    printed with shares of the peak."""
    train, infer = mine["train"], mine["infer"]
    if "plain_torch_bf16" not in mine:  # no native bf16: the same precision is fp32
        if ref is None:
            return {}
        best = max(r["images_per_s"] for k, r in infer.items() if k != "torch-bf16")
        return {"train_ratio_same_precision": train["default"]["images_per_s"] / ref["train_images_per_s"],
                "infer_ratio_same_precision": best / ref["infer_images_per_s"], "same_precision": "fp32"}
    plain = mine["plain_torch_bf16"]
    peers_train = {"plain torch autocast": plain["train"]["images_per_s"]}
    peers_infer = {"plain torch autocast": plain["infer"]["images_per_s"]}
    if "torch_compile_bf16" in mine:
        peers_train["torch.compile autocast"] = mine["torch_compile_bf16"]["train"]["images_per_s"]
        peers_infer["torch.compile autocast"] = mine["torch_compile_bf16"]["infer"]["images_per_s"]
        print(f"  (torch.compile: {mine['torch_compile_bf16']['compile_seconds']:.0f} s of compiling, not counted)")
    if ref_bf16 is not None:
        peers_train["keras mixed_bfloat16"] = ref_bf16["train_images_per_s"]
        peers_infer["keras mixed_bfloat16"] = ref_bf16["infer_images_per_s"]
    for name in peers_train:
        share_t = f", {peers_train[name] * 3 * fwd / peak_bf16:.0%} of the bf16 peak" if peak_bf16 else ""
        share_i = f", {peers_infer[name] * fwd / peak_bf16:.0%}" if peak_bf16 else ""
        print(f"  bf16 peer {name:22s} train {peers_train[name]:7.2f} img/s{share_t}; "
              f"infer {peers_infer[name]:7.2f} img/s{share_i}")
    mine_train = train["default"]["images_per_s"]
    mine_infer = infer.get("torch-bf16", {}).get("images_per_s", 0.0)
    best_train, best_infer = max(peers_train, key=peers_train.get), max(peers_infer, key=peers_infer.get)
    ratios = {"train_ratio_same_precision": mine_train / peers_train[best_train],
              "infer_ratio_same_precision": mine_infer / peers_infer[best_infer], "same_precision": "bf16",
              "best_bf16_train_peer": best_train, "best_bf16_infer_peer": best_infer}
    print(f"  same precision (bf16): train {ratios['train_ratio_same_precision']:.2f}x {best_train}, "
          f"infer (--precision bf16) {ratios['infer_ratio_same_precision']:.2f}x {best_infer}")
    return ratios


def report(key: str, fwd: float, peak: float, mine: dict, ref: dict | None, ref_bf16: dict | None = None,
           peak_bf16: float | None = None) -> dict:
    """Print one size's figures and return its ratios."""
    train = mine["train"]
    infer = mine["infer"]
    best_name = max((k for k in infer if k != "torch-bf16"), key=lambda k: infer[k]["images_per_s"])  # fp32
    best = infer[best_name]["images_per_s"]
    int8 = mine["int8"]
    print(f"\n{key}: {fwd:.2f} GFLOP forward per image")
    for name, row in train.items():
        bf16 = row["precision"] != "fp32" and peak_bf16
        print(f"  roadseg train {name:11s} {row['images_per_s']:7.2f} img/s ({row['precision']}, batch {row['batch']}), "
              f"{row['images_per_s'] * 3 * fwd / (peak_bf16 if bf16 else peak):.0%} of the {'bf16' if bf16 else 'fp32'} peak")
    for name, row in infer.items():
        bf16 = name == "torch-bf16" and peak_bf16
        print(f"  roadseg infer {name:11s} {row['images_per_s']:7.2f} img/s ({'bf16' if bf16 else 'fp32'}, batch "
              f"{INFER_BATCH}), latency {row['latency_ms']:6.1f} ms, "
              f"{row['images_per_s'] * fwd / (peak_bf16 if bf16 else peak):.0%} of the {'bf16' if bf16 else 'fp32'} peak")
    for name, row in int8.items():
        print(f"  roadseg int8  {name:8s} {row['images_per_s']:7.2f} img/s (batch {INFER_BATCH}), "
              f"latency {row['latency_ms']:6.1f} ms")
    ratios: dict = {}
    if ref is not None:
        fp32_train = train.get("fp32", train["default"])["images_per_s"]
        ratios = {"train_ratio": train["default"]["images_per_s"] / ref["train_images_per_s"],
                  "train_ratio_fp32": fp32_train / ref["train_images_per_s"],
                  "train_ratio_vs_best_keras_run": train["default"]["images_per_s"] / max(ref["train_runs"]),
                  "train_ratio_fp32_vs_best_keras_run": fp32_train / max(ref["train_runs"]),
                  "infer_ratio": best / ref["infer_images_per_s"],
                  "latency_ratio": ref["latency_ms"] / min(r["latency_ms"] for r in infer.values())}
        if int8:
            ratios["int8_ratio"] = max(r["images_per_s"] for r in int8.values()) / ref["infer_images_per_s"]
        spread = ", ".join(f"{v:.1f}" for v in ref["train_runs"])
        print(f"  keras train           {ref['train_images_per_s']:7.2f} img/s (fp32; runs: {spread})"
              f"  -> ratio {ratios['train_ratio']:.2f} (default), {ratios['train_ratio_fp32']:.2f} (fp32); "
              f"against Keras' best run {ratios['train_ratio_vs_best_keras_run']:.2f}, "
              f"{ratios['train_ratio_fp32_vs_best_keras_run']:.2f}")
        print(f"  keras infer           {ref['infer_images_per_s']:7.2f} img/s  -> ratio {ratios['infer_ratio']:.2f} "
              f"(best fp32 backend: {best_name})" + (f", int8 {ratios['int8_ratio']:.2f}" if int8 else ""))
        print(f"  keras latency         {ref['latency_ms']:7.1f} ms     -> speed-up {ratios['latency_ratio']:.2f}")
    ratios.update(same_precision(mine, ref, ref_bf16, fwd, peak_bf16))
    return ratios


def save(path: str | None, results: dict) -> None:
    """Write the figures so far to `path` (if given), atomically (roadseg's atomic_write)."""
    if path:
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(results, indent=2)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", action="append", help="HxW (repeatable); default 96x128 and 352x480")
    p.add_argument("--reference", choices=["keras", "none"], default="none")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=6, help="training steps per timed epoch")
    p.add_argument("--json", help="write the figures here (after each stage)")
    a = p.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in (a.size or ["96x128", "352x480"])]
    keep_freed_memory()
    peak = matmul_peak()
    bf16 = cpu_has_native_bf16()
    peak_bf16 = matmul_peak(dtype=torch.bfloat16) if bf16 else None
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; fp32 matmul peak {peak:.0f} GFLOP/s"
          + (f", bf16 peak {peak_bf16:.0f} GFLOP/s" if bf16 else " (no native bf16)"))
    results: dict = {"peak_gflops": peak, "peak_gflops_bf16": peak_bf16, "sizes": {}}
    for size in sizes:
        key = f"{size[0]}x{size[1]}"
        fwd = forward_gflop(size)
        row = results["sizes"][key] = {"forward_gflop": fwd}
        row["roadseg"] = mine = roadseg_figures(size, a.steps, a.repeats)
        save(a.json, results)  # each stage as it ends: a run stopped later keeps what it measured
        row["keras"] = ref = keras_figures(size, a.steps, a.repeats) if a.reference == "keras" else None
        save(a.json, results)
        row["keras_bf16"] = ref_bf16 = (keras_figures(size, a.steps, a.repeats, "mixed_bfloat16")
                                        if a.reference == "keras" and bf16 else None)
        row.update(report(key, fwd, peak, mine, ref, ref_bf16, peak_bf16))
        if len(sizes) == 1:
            results.update({k: v for k, v in row.items() if k.startswith(("train_ratio", "infer_ratio", "int8_ratio",
                                                                            "latency_ratio", "same_precision",
                                                                            "best_bf16"))})
        save(a.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
