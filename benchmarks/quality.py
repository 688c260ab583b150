"""Accuracy benchmark: score a checkpoint on a dataset split and record a row in RESULTS.md
beside the published numbers for CamVid (read from the dataset's README).

With --zoo, the model zoo's scoreboard instead: for each shipped model (or each --model given), its
network, parameters, GFLOPs at its input size, val mIoU at full resolution with and without flip TTA,
fp32 and INT8 frames/s in OpenVINO at batch 1 and its size on this machine, and its training hours
(from its card); a markdown table printed, and added to RESULTS.md unless --no-write. A model trained
on val too (a recipe's final run on train + val) has its val score marked so, beside the held-out
figure its card records.

Usage:
    python benchmarks/quality.py --model camvid --data ../shared/data/camvid --split val
    python benchmarks/quality.py --model runs/camvid/best.pt --data ../shared/data/camvid --no-write
    python benchmarks/quality.py --zoo --data ../shared/data/camvid
"""
from __future__ import annotations

import argparse
import datetime
import platform
import re
import sys
from pathlib import Path

from roadseg.evaluation.evaluate import evaluate

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Accuracy (benchmarks/quality.py)"


def published_numbers(data: Path) -> dict[str, float]:
    """'Name 12.3' pairs from the 'Published results' paragraph of the dataset README."""
    readme = data / "README.md"
    if not readme.exists():
        return {}
    text = readme.read_text()
    start = text.find("Published results")
    if start < 0:
        return {}
    para = text[start:].split("\n\n")[0]
    para = para.split(":", 1)[1] if ":" in para else para
    found = {}
    for item in re.split(r",\s*", para.replace("\n", " ")):
        m = re.match(r"\s*(.+?)\s+(\d+(?:\.\d+)?)\.?\s*$", item)
        if m:
            found[m.group(1).strip()] = float(m.group(2))
    return found


def machine() -> str:
    """The CPU's model name and bf16 hardware, its cores and the system."""
    import os

    from roadseg.device import cpu_name
    return f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}"


def zoo(models: list[str], data: str, split: str, write: bool) -> int:
    """The scoreboard: one row per model."""
    import numpy as np

    from roadseg.checkpoint import build_model, load_checkpoint, shipped_names
    from roadseg.inference.engines import OpenVinoEngine
    from roadseg.inference.export import onnx_bytes
    from roadseg.inference.processing import Preprocess
    from roadseg.inference.zoo import engine_fps, forward_gflops, int8_fps, val_miou
    from roadseg.nets.ensemble import network_label
    rows = ["| model | network | parameters | GFLOPs (size) | val mIoU | val mIoU, flip TTA | fp32 frames/s | "
            "INT8 frames/s | training |", "|" + " --- |" * 9]
    for name in models or shipped_names():
        ckpt = load_checkpoint(name)
        net = build_model(ckpt)
        size = tuple(ckpt["input"]["size"])
        scored = evaluate(name, data, split=split, full_res=True)
        plain, tta = scored["mean_iou"], evaluate(name, data, split=split, full_res=True, tta=True)["mean_iou"]
        held_out = val_miou(ckpt.get("card", {}))
        seen = scored["trained_on_split"]  # a final train+val run scored on val
        seen_note = f" (trained on {split}; held out, from its card: {held_out})" if seen else ""
        pre = Preprocess(ckpt["input"])
        x = pre.tensor(np.random.default_rng(0).integers(0, 256, (1, *size, 3), dtype=np.uint8))
        fp32 = engine_fps(OpenVinoEngine(onnx_bytes(ckpt)), x)
        hours = ckpt.get("card", {}).get("cpu_hours", "-")
        network = network_label(ckpt["model"]["arch"], ckpt["model"]["settings"])
        rows.append(f"| {name} | {network} | {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M | "
                    f"{forward_gflops(net, size, net.in_channels):.1f} ({size[0]}x{size[1]}) | {plain:.4f}{seen_note} | "
                    f"{tta:.4f}{' (trained on val)' if seen else ''} | {fp32:.0f} | {int8_fps(ckpt):.0f} | {str(hours).split(' (')[0]} |")
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(table)
    if write:
        text = RESULTS.read_text()
        text += (f"\n## Model zoo scoreboard ({datetime.date.today()}, {machine()})\n\n"
                 f"Command: `python benchmarks/quality.py --zoo --data {data}`; CamVid {split} at full resolution; "
                 "frames/s in OpenVINO, batch 1, at each model's own size.\n\n" + table + "\n")
        RESULTS.write_text(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", help="a model (repeatable with --zoo; default: the shipped ones)")
    p.add_argument("--zoo", action="store_true", help="the zoo's scoreboard instead of one model's classes")
    p.add_argument("--data", required=True)
    p.add_argument("--format", default="auto")
    p.add_argument("--split", default="val")
    p.add_argument("--no-full-res", action="store_true", help="score at the model size instead")
    p.add_argument("--no-write", action="store_true", help="print only; do not touch RESULTS.md")
    a = p.parse_args(argv)
    if a.zoo:
        return zoo(a.model or [], a.data, a.split, not a.no_write)
    if not a.model or len(a.model) != 1:
        p.error("give one --model (or --zoo)")
    a.model = a.model[0]
    r = evaluate(a.model, a.data, a.format, a.split, full_res=not a.no_full_res)
    published = published_numbers(Path(a.data))
    print(f"{a.model} on {a.data} ({a.split}, {r['num_images']} images, "
          f"{'full resolution' if r['full_res'] else 'model size'})")
    print(f"pixel accuracy {r['pixel_accuracy']:.4f}  mean IoU {r['mean_iou']:.4f}")
    for name, iou in r["per_class_iou"].items():
        print(f"  {name:<14} {iou if iou is None else round(iou, 4)}")
    for name, score in published.items():
        print(f"  ratio to {name} ({score}): {100 * r['mean_iou'] / score:.3f}")
    if a.no_write:
        return 0
    names = list(r["per_class_iou"])
    header = ("| date | machine | model | split | pixel acc | mIoU | " + " | ".join(names) + " |\n"
              "|" + " --- |" * (6 + len(names)) + "\n")
    per_class = " | ".join("-" if v is None else f"{v:.3f}" for v in r["per_class_iou"].values())
    row = (f"| {datetime.date.today()} | {machine()} | {a.model} | {a.split} | {r['pixel_accuracy']:.4f} | "
           f"{r['mean_iou']:.4f} | {per_class} |\n")
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if SECTION not in text:
        pub = ", ".join(f"{k} {v}" for k, v in published.items()) or "none found"
        text += (f"\n{SECTION}\n\nCommand: `python benchmarks/quality.py --model MODEL --data DATA --split SPLIT`. "
                 f"Full-resolution scores over the dataset's classes. Published mIoU (CamVid test split, "
                 f"from the dataset README): {pub}.\n\n" + header)
    # append the row at the end of the section's table
    head, _, tail = text.partition(SECTION)
    lines = tail.split("\n")
    last_table = max(i for i, line in enumerate(lines) if line.startswith("|"))
    lines.insert(last_table + 1, row.rstrip("\n"))
    RESULTS.write_text(head + SECTION + "\n".join(lines))
    print(f"row added to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
