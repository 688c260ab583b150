"""The `roadseg` command line: synth, train, evaluate, predict, check, export, import-keras, info, demo.
Each command parses its flags here and calls the package; train, predict, evaluate and demo also
apply the CPU allocator setting (`roadseg.device.keep_freed_memory`), which the library never does.

Usage: ``roadseg train --data data --out runs/x --epochs 40``  (``roadseg COMMAND --help`` for each)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .errors import RoadsegError
from .inference.engines import BACKENDS
from .nets import names as network_names

FORMAT_CHOICES = ["auto", "carla", "camvid", "generic"]
NO_WINOGRAD_HELP = ("torch backend on the CPU: run PyTorch's own convolutions instead of roadseg's Winograd "
                    "kernels (same logits within 1e-4, slower)")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="dataset folder (CARLA, CamVid or generic layout)")
    p.add_argument("--out", help="run folder to write (default runs/train)")
    p.add_argument("--config", help="YAML file of settings; flags override it")
    p.add_argument("--format", choices=FORMAT_CHOICES)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--size", help="network input HEIGHTxWIDTH (default 96x128)")
    p.add_argument("--resize", choices=["bilinear", "nearest"], help="image resize filter (masks: nearest)")
    p.add_argument("--seed", type=int)
    p.add_argument("--val-fraction", type=float, help="held-out share when the layout has no val split")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--ignore-index", help="mask id left out of loss and metrics: a number, none or auto")
    p.add_argument("--arch", help=f"network, by registry name: {', '.join(network_names())} (default unet)")
    p.add_argument("--base-filters", type=int, help="filters of the first block (default 32)")
    p.add_argument("--depth", type=int, help="encoder blocks (default 5)")
    p.add_argument("--dropout", type=float)
    p.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--crop", help="train on random HEIGHTxWIDTH crops (evaluation stays at --size)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random scale, horizontal flip, colour jitter")
    p.add_argument("--aug-scale", type=float, nargs=2, metavar=("MIN", "MAX"))
    p.add_argument("--aug-hflip", type=float, help="flip probability")
    p.add_argument("--aug-color", type=float, help="colour jitter strength")
    p.add_argument("--loss", choices=["ce", "dice", "ce+dice"])
    p.add_argument("--class-weights", help="none, median-frequency or a JSON/YAML list")
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=["none", "poly", "cosine", "onecycle"])
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--patience", type=int, help="early stopping: epochs without a better val mIoU")
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="mixed precision (CUDA fp16/bf16; bf16 on CPUs with AVX512-BF16 or AMX); --no-amp for fp32")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the network; the first step's time includes compiling")
    p.add_argument("--winograd", action=argparse.BooleanOptionalAction, default=None,
                   help="fp32 on the CPU: run 3x3 convs with 64+ channels as Winograd F(4x4,3x3) (default on)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--sync-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="SyncBatchNorm across GPUs under torchrun")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="write TensorBoard event files to RUN/tensorboard")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roadseg", description="Road-scene segmentation with a U-Net.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write synthetic CARLA-format scenes")
    p.add_argument("out")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--size", default="480x640", help="HEIGHTxWIDTH of the frames (CARLA: 480x640)")
    p.add_argument("--seed", type=int, default=0)

    _add_train_args(sub.add_parser("train", help="train a network (the notebook's U-Net by default)"))

    p = sub.add_parser("evaluate", help="score a checkpoint on a dataset")
    p.add_argument("--model", required=True, help="checkpoint path or shipped model name")
    p.add_argument("--data", required=True)
    p.add_argument("--format", choices=FORMAT_CHOICES, default="auto")
    p.add_argument("--split", default="val", help="val, test, train or all")
    p.add_argument("--size", help="network input size (default: the checkpoint's)")
    p.add_argument("--full-res", action="store_true", help="score at each mask's own resolution")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json", help="write the scores as JSON here")
    p.add_argument("--report", metavar="DIR", help="write a self-contained HTML report to DIR/index.html")
    p.add_argument("--worst", type=int, default=6, help="frames shown in the report (lowest mean IoU)")
    p.add_argument("--backend", choices=BACKENDS, default="torch", help="inference engine")
    p.add_argument("--no-winograd", dest="winograd", action="store_false", help=NO_WINOGRAD_HELP)
    p.add_argument("--device", default="auto")

    p = sub.add_parser("predict", help="segment frames")
    p.add_argument("inputs", nargs="*", help="image files, folders or glob patterns")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--overlay", action="store_true", help="also write image/colour blends")
    p.add_argument("--compare", metavar="DATA", help="write image | true | predicted figures for DATA's frames")
    p.add_argument("--format", choices=FORMAT_CHOICES, default="auto", help="layout of --compare DATA")
    p.add_argument("--split", default="val", help="split of --compare DATA")
    p.add_argument("--limit", type=int, default=8, help="frames of --compare DATA (0 = all)")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="inference engine: torch, onnx (onnxruntime) or openvino (pip install 'roadseg[openvino]')")
    p.add_argument("--no-winograd", dest="winograd", action="store_false", help=NO_WINOGRAD_HELP)
    p.add_argument("--size", help="network input size (default: the checkpoint's)")
    p.add_argument("--device", default="auto")

    p = sub.add_parser("check", help="report every problem in a dataset, without training")
    p.add_argument("data")
    p.add_argument("--format", choices=FORMAT_CHOICES, default="auto")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--ignore-index", default="auto")
    p.add_argument("--fix-palette", metavar="COLOURS.json", help="convert colour-palette masks to id masks")
    p.add_argument("--out", help="folder for --fix-palette output")

    p = sub.add_parser("import-keras", help="convert the notebook's Keras U-Net weights (HDF5) to a checkpoint")
    p.add_argument("weights", help="HDF5 file from model.save or save_weights")
    p.add_argument("out", help="checkpoint to write (.pt)")
    p.add_argument("--size", default="96x128", help="input size the model was trained at")

    p = sub.add_parser("export", help="export a checkpoint: slim .pt (optionally fp16) or ONNX")
    p.add_argument("--model", required=True)
    p.add_argument("--format", choices=["pt", "onnx", "onnx-int8"], required=True)
    p.add_argument("--calibration", metavar="DATA", help="onnx-int8: dataset whose training frames calibrate")
    p.add_argument("--calibration-frames", type=int, default=32)
    p.add_argument("--half", action="store_true", help="pt: store the weights in half precision")
    p.add_argument("--card", action="append", default=[], metavar="KEY=VALUE", help="pt: add a model-card line")
    p.add_argument("--logit-adjustment", type=float, default=0.0, metavar="TAU",
                   help="pt: fold -TAU*log(class weight) into the classifier bias (for class-weighted training)")
    p.add_argument("out")

    p = sub.add_parser("info", help="describe a checkpoint")
    p.add_argument("model")

    p = sub.add_parser("demo", help="synthesise data, train, evaluate and predict end to end")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    return parser


def cmd_synth(a: argparse.Namespace) -> None:
    from .config import parse_size
    from .data.synth import write_dataset
    if a.count < 1:
        raise RoadsegError("--count must be at least 1")
    write_dataset(a.out, a.count, parse_size(a.size), a.seed, progress=True)
    print(f"wrote {a.count} frames to {a.out}/CameraRGB and {a.out}/CameraMask")


def cmd_train(a: argparse.Namespace) -> None:
    from .config import TrainConfig
    from .training import train
    from .training.distributed import is_main_process
    keys = set(TrainConfig.keys())
    overrides = {k: v for k, v in vars(a).items() if k in keys}
    if a.resume:
        base = TrainConfig.resolve(Path(a.resume) / "config.yaml")
        overrides["out"] = a.resume
        cfg = TrainConfig.resolve(a.config, overrides, base=base)
    else:
        cfg = TrainConfig.resolve(a.config, overrides)
    if not cfg.data:
        raise RoadsegError("no dataset given; pass --data DIR (or set data: in --config)")
    _keep_freed_memory(cfg.device)
    run = train(cfg, resume=bool(a.resume), overwrite=a.overwrite)
    if is_main_process():
        print(f"run written to {run} (best.pt, last.pt, metrics.csv, curves.png, config.yaml)")


def cmd_evaluate(a: argparse.Namespace) -> None:
    from .evaluation.evaluate import evaluate_frames, format_report, write_json
    _keep_freed_memory(a.device if a.backend == "torch" else "cpu")
    report, worst = evaluate_frames(a.model, a.data, a.format, a.split, a.size, a.full_res, a.batch_size,
                                    a.device, worst=a.worst if a.report else 0, backend=a.backend,
                                    winograd=a.winograd)
    print(format_report(report))
    if a.report:
        from .evaluation.report import write_report
        print(f"report written to {write_report(report, worst, a.report)}")
    if a.json:
        write_json(report, a.json)
        print(f"scores written to {a.json}")


def cmd_predict(a: argparse.Namespace) -> None:
    from .config import parse_size
    from .data import discover, select_trained_split
    from .evaluation.compare import compare_pairs
    from .inference.files import predict_files
    from .inference.predictor import Predictor
    if not a.inputs and not a.compare:
        raise RoadsegError("nothing to predict; give image files/folders or --compare DATA")
    _keep_freed_memory(a.device if a.backend == "torch" else "cpu")
    predictor = Predictor.from_checkpoint(a.model, a.device, parse_size(a.size) if a.size else None, a.backend,
                                          a.winograd)
    if a.compare:
        layout = discover(a.compare, a.format)
        pairs = select_trained_split(layout, a.split, predictor.meta.get("data", {}))
        pairs = pairs[: a.limit] if a.limit else pairs
        written = compare_pairs(predictor, pairs, a.out)
        print(f"wrote {len(written)} comparison figures to {a.out}")
    if a.inputs:
        written = predict_files(predictor, a.inputs, a.out, a.overlay)
        print(f"wrote {len(written)} files to {a.out}")


def cmd_check(a: argparse.Namespace) -> int:
    from .data.check import check_dataset, fix_palette
    if a.fix_palette:
        if not a.out:
            raise RoadsegError("--fix-palette needs --out DIR for the converted masks")
        written = fix_palette(a.data, a.fix_palette, a.out, a.format)
        print(f"wrote {len(written)} id masks to {a.out}")
        return 0
    report = check_dataset(a.data, a.format, a.num_classes, a.ignore_index, progress=True)
    print(report.text())
    return 0 if report.clean else 1


def cmd_import_keras(a: argparse.Namespace) -> None:
    from .checkpoint import save_checkpoint
    from .config import parse_size
    from .inference.keras_import import import_keras
    ckpt = import_keras(a.weights, parse_size(a.size))
    save_checkpoint(ckpt, a.out)
    print(f"wrote {a.out}: U-Net with {ckpt['model']['parameters']:,} parameters, "
          f"{len(ckpt['classes']['names'])} classes")


def cmd_export(a: argparse.Namespace) -> None:
    from .inference.export import export_onnx, export_pt
    if a.format == "onnx":
        path = export_onnx(a.model, a.out)
    elif a.format == "onnx-int8":
        if not a.calibration:
            raise RoadsegError("--format onnx-int8 needs --calibration DATA (frames to calibrate the INT8 ranges)")
        path = export_onnx(a.model, a.out, int8_calibration=a.calibration, calibration_count=a.calibration_frames)
    else:
        card = {}
        for item in a.card:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise RoadsegError(f"--card {item!r} is not KEY=VALUE")
            card[key] = value
        path = export_pt(a.model, a.out, a.half, card, a.logit_adjustment)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def cmd_info(a: argparse.Namespace) -> None:
    from .info import describe
    print(describe(a.model))


def cmd_demo(a: argparse.Namespace) -> None:
    from .demo import run_demo
    _keep_freed_memory("auto")
    run_demo(a.out, a.frames, a.epochs, a.seed, a.batch_size)


def _keep_freed_memory(device: str | None) -> None:
    """Keep freed memory in glibc's heap when the work runs on the CPU (see roadseg.device)."""
    from .device import keep_freed_memory, pick_device
    if pick_device(device or "auto").type == "cpu":
        keep_freed_memory()


COMMANDS = {"synth": cmd_synth, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "check": cmd_check, "export": cmd_export, "import-keras": cmd_import_keras, "info": cmd_info, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad input prints one line and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args) or 0
    except RoadsegError as e:
        print(f"roadseg: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("roadseg: interrupted", file=sys.stderr)
        return 130
