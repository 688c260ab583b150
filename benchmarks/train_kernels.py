"""The bf16 CPU training step with and without one of roadseg's native training kernels, as ratios
measured in the same process: the two variants swapped in turn over interleaved rounds (the order
alternating), so a machine whose speed drifts between minutes affects both alike.

Kernels compared (`--kernel`): `ce`, the softmax cross-entropy's row kernel
(`roadseg.accel.rows.fused_cross_entropy`) against PyTorch's fp32 F.cross_entropy over the same rows;
`dice`, the soft Dice's row kernels (`roadseg.accel.rows.fused_dice`) against PyTorch's operators for
it; `norm`, `roadseg.accel.norm.NativeBatchNorm` against nn.BatchNorm2d; `resize`, `roadseg.accel.resize.NativeResize` against F.interpolate. The rest of the
step is what `roadseg train` runs on a CPU with native bf16: the network in channels-last, bf16
autocast, `ce+dice` with class weights, AdamW, the other kernels on. `--loss-only` times the loss alone
(`ce` or `dice`, forward and backward on random bf16 channels-last logits of the network's output size).

Usage::

    python benchmarks/train_kernels.py --kernel dice --arch resunet --crop 288x384
    python benchmarks/train_kernels.py --kernel norm --arch fastunet --crop 256x352 --rounds 8
    python benchmarks/train_kernels.py --kernel ce --loss-only --rounds 10
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

from roadseg import nets
from roadseg.accel import kernels
from roadseg.accel.norm import NativeBatchNorm, use_native_norm
from roadseg.accel.resize import NativeResize, use_native_resize
from roadseg.accel.rows import reference_cross_entropy as pytorch_cross_entropy
from roadseg.config import parse_size
from roadseg.device import cpu_name
from roadseg.nets.resize import Resize
from roadseg.training import losses

SETTINGS = {"resunet": {"base_filters": 16, "dropout": 0.1}, "fastunet": {"width": 16}}


def switch(kernel: str, model: nn.Module) -> Callable[[bool], None]:
    """A function that turns `kernel` on (True) or off (False) in `model` and the loss."""
    fused_dice, fused_ce = losses.fused_dice, losses.fused_cross_entropy
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    resizes = [m for m in model.modules() if isinstance(m, Resize)]

    def use(on: bool) -> None:
        if kernel == "dice":
            losses.fused_dice = fused_dice if on else (lambda *a: None)
        if kernel == "ce":
            losses.fused_cross_entropy = fused_ce if on else pytorch_cross_entropy
        for m in norms if kernel == "norm" else resizes if kernel == "resize" else []:
            m.__class__ = (NativeBatchNorm if on else nn.BatchNorm2d) if kernel == "norm" else \
                (NativeResize if on else Resize)
    return use


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernel", choices=["ce", "dice", "norm", "resize"], required=True)
    p.add_argument("--loss-only", action="store_true", help="time the loss alone (--kernel ce or dice)")
    p.add_argument("--arch", default="resunet", choices=sorted(SETTINGS))
    p.add_argument("--crop", default="288x384")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=4, help="training steps per variant per round")
    args = p.parse_args()
    if args.loss_only and args.kernel not in ("ce", "dice"):
        p.error("--loss-only times a loss: use it with --kernel ce or dice")
    if kernels.library() is None:
        raise SystemExit(f"the native kernels are not available: {kernels.why_unavailable()}")
    h, w = parse_size(args.crop)
    torch.manual_seed(0)
    model = nets.create(args.arch, num_classes=11, **SETTINGS[args.arch]).to(memory_format=torch.channels_last)
    use_native_resize(model)
    use_native_norm(model)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    loss_fn = losses.make_loss("ce+dice", 11, torch.rand(11) + 0.5)
    x = torch.rand(args.batch_size, 3, h, w).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 12, (args.batch_size, h, w))

    if args.loss_only:
        logits = torch.randn(args.batch_size, 11, h, w, dtype=torch.bfloat16).contiguous(
            memory_format=torch.channels_last).requires_grad_()
        loss_fn = losses.make_loss(args.kernel, 11, torch.rand(11) + 0.5 if args.kernel == "ce" else None)

    def step() -> None:
        if args.loss_only:
            logits.grad = None
            loss_fn(logits, y).backward()
            return
        with torch.autocast("cpu", torch.bfloat16):
            loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    use = switch(args.kernel, model)
    what = f"the {args.kernel} loss alone" if args.loss_only else args.arch
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, PyTorch {torch.__version__}; {what} "
          f"{h}x{w} batch {args.batch_size}; kernel {args.kernel}: off -> on, img/s")
    for on in (False, True):  # warm-up
        use(on)
        step()
    ratios = []
    for r in range(args.rounds):
        rate = {}
        for on in (False, True) if r % 2 == 0 else (True, False):
            use(on)
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            rate[on] = args.batch_size * args.steps / (time.perf_counter() - start)
        ratios.append(rate[True] / rate[False])
        print(f"round {r + 1}: {rate[False]:.2f} -> {rate[True]:.2f} ({ratios[-1]:.2f}x)", flush=True)
    use(True)
    print(f"median ratio {statistics.median(ratios):.2f}x over {args.rounds} rounds")


if __name__ == "__main__":
    main()
