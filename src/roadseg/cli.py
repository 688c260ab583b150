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
from typing import Sequence

from .errors import RoadsegError

FORMAT_CHOICES = ["auto", "carla", "camvid", "generic"]
NO_WINOGRAD_HELP = ("torch backend on the CPU: run PyTorch's own convolutions instead of roadseg's Winograd "
                    "kernels (same logits within 1e-4, slower)")

SIZE_HELP = ("network input HEIGHTxWIDTH (default: the checkpoint's), or 'native': each frame at its own size, "
             "padded to the network's multiple and cropped back")
TILE_HELP = ("sliding-window inference for frames much larger than the training size: windows of HxW "
             "(multiples of the network's) at a third's overlap, at the frame's own resolution")
TTA_HELP = "test-time augmentation: average the logits of each frame and its mirror image (twice the work)"


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from .nets import names as network_names
    from .training.losses import LOSSES
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
    p.add_argument("--init", metavar="MODEL", help="start from this model's weights: a checkpoint, run folder or "
                   "shipped name (tensors of matching name and shape; classifier rows of shared classes)")
    p.add_argument("--freeze-encoder", type=int, metavar="EPOCHS", help="with --init: keep the encoder fixed "
                   "for the first EPOCHS epochs")
    p.add_argument("--classes", choices=["carla", "carla08", "camvid", "generic"],
                   help="class table of the masks (default: the layout's; carla08: CARLA 0.8, sky at id 0)")
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
    p.add_argument("--loss", choices=LOSSES, help="ce (the notebook's), ohem (hard pixels only), dice, lovasz, "
                   "or two joined with + (default ce)")
    p.add_argument("--class-weights", help="none, median-frequency or a JSON/YAML list")
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=["none", "poly", "cosine", "onecycle"])
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--ema", type=float, metavar="DECAY",
                   help="keep an exponential moving average of the weights (e.g. 0.999) for validation and the saved model")
    p.add_argument("--patience", type=int, help="early stopping: epochs without a better val mIoU")
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="mixed precision (CUDA fp16/bf16; bf16 on CPUs with AVX512-BF16 or AMX); --no-amp for fp32")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the network; the first step's time includes compiling")
    p.add_argument("--winograd", action=argparse.BooleanOptionalAction, default=None,
                   help="fp32 training on the CPU: run 3x3 convs with 64+ channels as Winograd F(4x4,3x3) "
                   "(default off: measured 1.1-1.25x faster on a Zen 5 CPU only)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--sync-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="SyncBatchNorm across GPUs under torchrun")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="write TensorBoard event files to RUN/tensorboard")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")


def _add_overwrite(p: argparse.ArgumentParser, what: str = "existing output files") -> None:
    p.add_argument("--overwrite", action="store_true", help=f"replace {what} (never an input)")


def build_parser() -> argparse.ArgumentParser:
    from .inference.engines import BACKENDS
    parser = argparse.ArgumentParser(prog="roadseg", description="Road-scene segmentation with a U-Net.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write synthetic CARLA-format scenes")
    p.add_argument("out")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--size", default="480x640", help="HEIGHTxWIDTH of the frames (CARLA: 480x640)")
    p.add_argument("--seed", type=int, default=0)
    _add_overwrite(p, "the frames of an existing CameraRGB/ and CameraMask/")

    _add_train_args(sub.add_parser("train", help="train a network (the notebook's U-Net by default)"))

    p = sub.add_parser("evaluate", help="score a checkpoint on a dataset")
    p.add_argument("--model", required=True, help="checkpoint path or shipped model name")
    p.add_argument("--data", required=True)
    p.add_argument("--format", choices=FORMAT_CHOICES, default="auto")
    p.add_argument("--split", default="val", help="val, test, train or all")
    p.add_argument("--classes", choices=["carla", "carla08", "camvid", "generic"],
                   help="class table of the data's masks (default: the layout's); must be the model's")
    p.add_argument("--size", help=SIZE_HELP)
    p.add_argument("--full-res", action="store_true", help="score at each mask's own resolution")
    p.add_argument("--tta", action="store_true", help=TTA_HELP)
    p.add_argument("--tile", metavar="HxW", help=TILE_HELP)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json", help="write the scores as JSON here")
    p.add_argument("--report", metavar="DIR", help="write a self-contained HTML report to DIR/index.html")
    p.add_argument("--worst", type=int, default=6, help="frames shown in the report (lowest mean IoU)")
    p.add_argument("--backend", choices=BACKENDS, default="torch", help="inference engine")
    p.add_argument("--no-winograd", dest="winograd", action="store_false", help=NO_WINOGRAD_HELP)
    p.add_argument("--device", default="auto")
    _add_overwrite(p, "an existing --json file or --report page")

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
    p.add_argument("--size", help=SIZE_HELP)
    p.add_argument("--tta", action="store_true", help=TTA_HELP)
    p.add_argument("--tile", metavar="HxW", help=TILE_HELP)
    p.add_argument("--device", default="auto")
    _add_overwrite(p, "existing output files in --out")

    p = sub.add_parser("check", help="report every problem in a dataset, without training")
    p.add_argument("data")
    p.add_argument("--format", choices=FORMAT_CHOICES, default="auto")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--classes", choices=["carla", "carla08", "camvid", "generic"],
                   help="class table of the masks (default: the layout's)")
    p.add_argument("--ignore-index", default="auto")
    p.add_argument("--fix-palette", metavar="COLOURS.json", help="convert colour-palette masks to id masks")
    p.add_argument("--out", help="folder for --fix-palette output")
    _add_overwrite(p, "existing --fix-palette output masks")

    p = sub.add_parser("import-keras", help="convert the notebook's Keras U-Net weights (HDF5) to a checkpoint")
    p.add_argument("weights", help="HDF5 file from model.save or save_weights")
    p.add_argument("out", help="checkpoint to write (.pt)")
    p.add_argument("--size", default="96x128", help="input size the model was trained at")
    _add_overwrite(p, "an existing checkpoint file")

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
    _add_overwrite(p, "an existing output file")

    p = sub.add_parser("models", help="list the models shipped with roadseg")
    p.add_argument("--speed", action="store_true", help="measure INT8 frames/s here (OpenVINO, batch 1)")

    p = sub.add_parser("info", help="describe a checkpoint")
    p.add_argument("model")

    p = sub.add_parser("demo", help="synthesise data, train, evaluate and predict end to end")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    _add_overwrite(p, "an earlier demo run in --out")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad input prints one line and returns 2. Ctrl-C and SIGTERM (also while torch is
    still being imported) stop the command with one line and exit 130 / 143; files being written are
    temporary until complete, so none is left half-written."""
    received: list[int] = []

    def stop(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

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
        signum = received[-1] if received else signal.SIGINT
        print(f"roadseg: interrupted ({signal.Signals(signum).name}); nothing half-written was left",
              file=sys.stderr)
        return 128 + signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
