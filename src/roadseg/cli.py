"""The `roadseg` command line: its flags (synth, train, evaluate, predict, check, export,
import-keras, info, demo) and `main`, which runs the command (`roadseg.commands`) and turns a
RoadsegError into one line on stderr and an exit status.

Usage: ``roadseg train --data data --out runs/x --epochs 40``  (``roadseg COMMAND --help`` for each)
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, Sequence

from .cli_train import CLASS_MAP_HELP, FORMAT_CHOICES, TABLE_CHOICES, add_train_args
from .errors import RoadsegError, SignalStop, end_if_importing, say_interrupted

NO_WINOGRAD_HELP = ("torch backend on the CPU: run PyTorch's own convolutions instead of roadseg's Winograd "
                    "kernels (same logits within 1e-4, slower)")

PRECISION_CHOICES = ["auto", "fp32", "bf16"]
PRECISION_HELP = ("torch backend: what the network computes in; auto = bf16 on CPUs with native bf16 (AVX512-BF16, "
                  "AMX) for models whose card records bf16 as checked, else fp32 (on CUDA its mixed precision)")
SIZE_HELP = ("network input HEIGHTxWIDTH (default: the checkpoint's), or 'native': each frame at its own size, "
             "padded to the network's multiple and cropped back")
TILE_HELP = ("sliding-window inference for frames much larger than the training size: windows of HxW "
             "(multiples of the network's) at a third's overlap, at the frame's own resolution")
TTA_HELP = "test-time augmentation: average the logits of each frame and its mirror image (twice the work)"
TTA_SCALES_HELP = ("multi-scale test-time augmentation (implies --tta): each frame and its mirror also resized by "
                   "these factors of the input size, e.g. 0.8 1.2 (two passes per scale)")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (where it has one worth showing) and keeps the examples' lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" not in text and action.default not in (None, False, [], argparse.SUPPRESS) \
                and action.option_strings:
            text += " (default: %(default)s)"
        return text


EXAMPLES = {
    "synth": ["roadseg synth data --count 300", "roadseg synth big --count 50 --size 720x1280 --seed 1",
              "roadseg synth carla08 --count 300 --hood 1 --classes carla08"],
    "train": ["roadseg train --data data --out runs/carla",
              "roadseg train --config configs/camvid-fast.yaml --data ../shared/data/camvid --out runs/fast",
              "roadseg train --resume runs/carla --epochs 60"],
    "evaluate": ["roadseg evaluate --model camvid --data ../shared/data/camvid --full-res",
                 "roadseg evaluate --model runs/carla --data data --report report --json scores.json"],
    "predict": ["roadseg predict --model camvid frames/ --out preds --overlay",
                "roadseg predict --model camvid-fast drive.mp4 --out preds",
                "roadseg predict --model runs/carla --compare data --out figures --limit 8"],
    "check": ["roadseg check data", "roadseg check masks_set --fix-palette colours.json --out fixed"],
    "import-keras": ["roadseg import-keras unet.h5 unet.pt"],
    "export": ["roadseg export --model runs/x --format onnx x.onnx",
               "roadseg export --model runs/x --format onnx-int8 --calibration data x8.onnx"],
    "models": ["roadseg models", "roadseg models --speed"],
    "benchmark": ["roadseg benchmark --model camvid", "roadseg benchmark --model runs/x --data data --json bench.json"],
    "info": ["roadseg info camvid", "roadseg info runs/carla/best.pt"],
    "demo": ["roadseg demo", "roadseg demo --out runs/demo2 --epochs 5"],
}


def _examples(command: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[command])


def _model_help() -> str:
    from .checkpoint import shipped_names
    return ("a checkpoint (.pt), a run folder (its best.pt), an exported .onnx file, or a shipped model: "
            + ", ".join(shipped_names()))


def _add_overwrite(p: argparse.ArgumentParser, what: str = "existing output files") -> None:
    p.add_argument("--overwrite", action="store_true", help=f"replace {what} (never an input)")


def _add_inference_args(p: argparse.ArgumentParser, backends: tuple[str, ...]) -> None:
    """The options `evaluate` and `predict` share: engine, precision, input size, TTA, tiles, device."""
    p.add_argument("--backend", choices=backends, default="torch",
                   help="inference engine: torch, onnx (onnxruntime) or openvino (pip install 'roadseg[openvino]')")
    p.add_argument("--no-winograd", dest="winograd", action="store_false", help=NO_WINOGRAD_HELP)
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help=PRECISION_HELP)
    p.add_argument("--size", help=SIZE_HELP)
    p.add_argument("--tta", action="store_true", help=TTA_HELP)
    p.add_argument("--tta-scales", type=float, nargs="+", metavar="S", help=TTA_SCALES_HELP)
    p.add_argument("--tile", metavar="HxW", help=TILE_HELP)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar (it shows only on a terminal anyway)")


def build_parser() -> argparse.ArgumentParser:
    from .inference.engines import BACKENDS
    from . import __version__
    parser = argparse.ArgumentParser(prog="roadseg", description="Per-pixel road-scene segmentation: train, "
                                     "evaluate, predict, check, export.", formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"roadseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_parser = sub.add_parser

    def add_parser(name: str, **kw):  # every command: defaults shown, examples at the end
        return _add_parser(name, formatter_class=HelpFormatter, epilog=_examples(name), **kw)
    sub.add_parser = add_parser  # type: ignore[method-assign]

    p = sub.add_parser("synth", help="write synthetic CARLA-format scenes")
    p.add_argument("out", help="folder to write CameraRGB/ and CameraMask/ into")
    p.add_argument("--count", type=int, default=100, help="frames to write")
    p.add_argument("--size", default="480x640", help="HEIGHTxWIDTH of the frames (CARLA: 480x640)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same frames")
    p.add_argument("--hood", type=float, default=0.0, metavar="SHARE", help="share of frames (0 to 1) showing "
                   "the ego vehicle's hood across the bottom, labelled Vehicles as in CARLA's camera frames")
    p.add_argument("--classes", choices=["carla", "carla08"], default="carla", help="class table of the "
                   "masks: carla (23 ids, CARLA 0.9.10+) or carla08 (13 ids; sky and the newer classes in 0, None)")
    _add_overwrite(p, "the frames of an existing CameraRGB/ and CameraMask/")

    add_train_args(sub.add_parser("train", help="train a network (the notebook's U-Net by default)"))

    p = sub.add_parser("evaluate", help="score a checkpoint on a dataset")
    p.add_argument("--model", required=True, help=_model_help())
    p.add_argument("--data", required=True, help="dataset folder (CARLA, CamVid or generic layout)")
    p.add_argument("--format", choices=FORMAT_CHOICES, default="auto", help="dataset layout")
    p.add_argument("--split", default="val", help="val, test, train or all")
    p.add_argument("--classes", choices=TABLE_CHOICES,
                   help="class table of the data's masks (default: the layout's); must be the model's")
    p.add_argument("--class-map", metavar="NAME|FILE", help=CLASS_MAP_HELP + "; only the classes it reaches are scored")
    p.add_argument("--ignore-index", help="mask id left out of the scores (default: the table's)")
    p.add_argument("--full-res", action="store_true", help="score at each mask's own resolution")
    p.add_argument("--batch-size", type=int, default=16, help="frames per forward pass")
    p.add_argument("--json", help="write the scores as JSON here")
    p.add_argument("--report", metavar="DIR", help="write a self-contained HTML report to DIR/index.html")
    p.add_argument("--worst", type=int, default=6, help="frames shown in the report (lowest mean IoU)")
    _add_inference_args(p, BACKENDS)
    _add_overwrite(p, "an existing --json file or --report page")

    p = sub.add_parser("predict", help="segment frames")
    p.add_argument("inputs", nargs="*", help="image files, folders, glob patterns or videos")
    p.add_argument("--model", required=True, help=_model_help())
    p.add_argument("--out", required=True, help="folder for <stem>.png (ids), <stem>_color.png, overlays")
    p.add_argument("--overlay", action="store_true", help="also write image/colour blends (<stem>_overlay.png)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the class colours in the overlay")
    p.add_argument("--legend", action="store_true", help="draw the classes present, with their colours, on the overlay")
    p.add_argument("--probs", action="store_true",
                   help="also write <stem>_conf.png: each pixel's confidence (max softmax) as a 16-bit PNG")
    p.add_argument("--skip-errors", action="store_true", help="report each unreadable input in one line, go on "
                   "with the rest, and exit 1 if any was skipped (default: stop before writing anything)")
    p.add_argument("--compare", metavar="DATA", help="write image | true | predicted figures for DATA's frames")
    p.add_argument("--format", choices=FORMAT_CHOICES, default="auto", help="layout of --compare DATA")
    p.add_argument("--split", default="val", help="split of --compare DATA")
    p.add_argument("--limit", type=int, default=8, help="frames of --compare DATA (0 = all)")
    _add_inference_args(p, BACKENDS)
    _add_overwrite(p, "existing output files in --out")

    p = sub.add_parser("check", help="report every problem in a dataset, without training")
    p.add_argument("data", help="dataset folder")
    p.add_argument("--format", choices=FORMAT_CHOICES, default="auto", help="dataset layout")
    p.add_argument("--num-classes", type=int, help="classes the masks may hold (default: the table's)")
    p.add_argument("--classes", choices=TABLE_CHOICES,
                   help="class table of the masks (default: the layout's)")
    p.add_argument("--ignore-index", default="auto", help="mask id that is not a class: a number, none or auto")
    p.add_argument("--fix-palette", metavar="COLOURS.json", help="convert colour-palette masks to id masks")
    p.add_argument("--out", help="folder for --fix-palette output")
    _add_overwrite(p, "existing --fix-palette output masks")

    p = sub.add_parser("import-keras", help="convert the notebook's Keras U-Net weights (HDF5) to a checkpoint")
    p.add_argument("weights", help="HDF5 file from model.save or save_weights")
    p.add_argument("out", help="checkpoint to write (.pt)")
    p.add_argument("--size", default="96x128", help="input size the model was trained at")
    _add_overwrite(p, "an existing checkpoint file")

    p = sub.add_parser("export", help="export a checkpoint: slim .pt (optionally fp16) or ONNX")
    p.add_argument("--model", required=True, action="append", help=_model_help() + "; repeat it for an ensemble")
    p.add_argument("--format", choices=["pt", "onnx", "onnx-int8"], required=True, help="pt, fp32 onnx or INT8 (QDQ) onnx")
    p.add_argument("--calibration", metavar="DATA", help="onnx-int8: dataset whose training frames calibrate")
    p.add_argument("--calibration-frames", type=int, default=32, help="onnx-int8: frames used to calibrate")
    p.add_argument("--half", action="store_true", help="pt: store the weights in half precision")
    p.add_argument("--training-weights", action="store_true", help="the stepped weights, not their --ema average (last.pt)")
    p.add_argument("--card", action="append", default=[], metavar="KEY=VALUE", help="pt: add a model-card line")
    p.add_argument("--size", metavar="HxW", help="pt: the input size the model runs at (default: its trained size)")
    p.add_argument("--logit-adjustment", type=float, default=0.0, metavar="TAU",
                   help="pt: fold -TAU*log(class weight) into the classifier bias (for class-weighted training)")
    p.add_argument("--average", choices=["probabilities", "logits"],
                   help="an ensemble (--model repeated): average its members' probabilities, or their logits (faster)")
    p.add_argument("out", help="file to write")
    _add_overwrite(p, "an existing output file")

    p = sub.add_parser("benchmark", help="speed (and accuracy) of a model in every inference backend")
    p.add_argument("--model", required=True, help=_model_help())
    p.add_argument("--data", help="also score mIoU on this dataset's val split (at the model's size)")
    p.add_argument("--size", help="input HEIGHTxWIDTH (default: the model's)")
    p.add_argument("--json", help="write the rows as JSON here")
    _add_overwrite(p, "an existing --json file")

    p = sub.add_parser("models", help="list the models shipped with roadseg")
    p.add_argument("--speed", action="store_true", help="measure INT8 frames/s here (OpenVINO, batch 1)")

    p = sub.add_parser("info", help="describe a checkpoint")
    p.add_argument("model", help=_model_help())

    p = sub.add_parser("demo", help="synthesise data, train, evaluate and predict end to end")
    p.add_argument("--out", default="runs/demo", help="folder for the demo's data, run and outputs")
    p.add_argument("--frames", type=int, default=300, help="synthetic frames (80%% train, 20%% held out)")
    p.add_argument("--epochs", type=int, default=25, help="training epochs")
    p.add_argument("--batch-size", type=int, default=8, help="training batch")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    _add_overwrite(p, "an earlier demo run in --out")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad input prints one line and returns 2. Ctrl-C and SIGTERM (also while torch is
    still being imported) stop the command with one line and exit 130 / 143; files being written are
    temporary until complete, so none is left half-written."""
    received: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        received.append(signum)
        end_if_importing(signum, frame)
        raise SignalStop

    main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        args = build_parser().parse_args(argv)
        from .commands import COMMANDS
        return COMMANDS[args.command](args) or 0
    except RoadsegError as e:
        print(f"roadseg: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return say_interrupted(received[-1] if received else signal.SIGINT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
