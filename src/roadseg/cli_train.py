"""The `roadseg train` command's flags (each a setting of `roadseg.config.TrainConfig`, defaulting to None
so that --config can set it), and the dataset choices other commands' flags share.

Usage: ``add_train_args(subparsers.add_parser("train"))``  (roadseg.cli builds the whole parser)
"""
from __future__ import annotations

import argparse

FORMAT_CHOICES = ["auto", "carla", "camvid", "cityscapes", "generic"]
TABLE_CHOICES = ["carla", "carla08", "camvid", "cityscapes", "generic"]
CLASS_MAP_HELP = ("map the masks' ids to another table on load: camvid-to-carla, carla-to-camvid, carla-to-carla08, "
                  "or a YAML/JSON file of source id or name: target id or name (unmapped ids are ignored)")


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Every flag of `roadseg train` on the parser `p`."""
    from .nets import names as network_names
    from .training.losses import LOSSES
    p.add_argument("--data", help="dataset folder (CARLA, CamVid or generic layout)")
    p.add_argument("--out", help="run folder to write (default runs/train)")
    p.add_argument("--config", help="YAML file of settings; flags override it")
    p.add_argument("--format", choices=FORMAT_CHOICES, help="dataset layout")
    p.add_argument("--epochs", type=int, help="passes over the training frames")
    p.add_argument("--batch-size", type=int, help="frames per step (the global batch under torchrun)")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--size", help="network input HEIGHTxWIDTH (default 96x128)")
    p.add_argument("--resize", choices=["bilinear", "nearest"], help="image resize filter (masks: nearest)")
    p.add_argument("--seed", type=int, help="seed of the split, the initialisation and the sample order")
    p.add_argument("--val-fraction", type=float, help="held-out share when the layout has no val split")
    p.add_argument("--train-on", choices=["train", "train+val"], help="train+val: the final run of a recipe "
                   "fixed on val (val then only monitors: it was trained on)")
    p.add_argument("--num-classes", type=int, help="classes (default: the table's; generic: the largest id + 1)")
    p.add_argument("--ignore-index", help="mask id left out of loss and metrics: a number, none or auto")
    p.add_argument("--arch", help=f"network, by registry name: {', '.join(network_names())} (default unet)")
    p.add_argument("--init", metavar="MODEL", help="start from this model's weights: a checkpoint, run folder or "
                   "shipped name (tensors of matching name and shape; classifier rows of shared classes)")
    p.add_argument("--freeze-encoder", type=int, metavar="EPOCHS", help="with --init: keep the encoder fixed "
                   "for the first EPOCHS epochs")
    p.add_argument("--classes", choices=TABLE_CHOICES,
                   help="class table of the masks (default: the layout's; carla08: CARLA 0.8, sky at id 0)")
    p.add_argument("--class-map", metavar="NAME|FILE", help=CLASS_MAP_HELP)
    p.add_argument("--base-filters", type=int, help="filters of the first block (default 32)")
    p.add_argument("--depth", type=int, help="encoder blocks (default 5)")
    p.add_argument("--dropout", type=float, help="dropout of the networks that take it")
    p.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None, help="batch norm after each conv (unet)")
    p.add_argument("--encoder", help="smp-* networks (pip install 'roadseg[smp]'): any smp or timm encoder, "
                   "e.g. resnet18, efficientnet-b0, tu-convnext_tiny")
    p.add_argument("--encoder-weights", metavar="imagenet|none|PATH", help="smp-* networks: start the encoder "
                   "from ImageNet (downloaded through smp/timm's caches), from nothing, or from a saved encoder "
                   "state dict")
    p.add_argument("--crop", help="train on random HEIGHTxWIDTH crops (evaluation stays at --size)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random scale, horizontal flip, colour jitter")
    p.add_argument("--aug-scale", type=float, nargs=2, metavar=("MIN", "MAX"))
    p.add_argument("--aug-hflip", type=float, help="flip probability")
    p.add_argument("--aug-color", type=float, help="colour jitter strength")
    p.add_argument("--paste", nargs="+", metavar="CLASS", help="class copy-paste: these classes' pixels (names or ids) "
                   "from another training sample, augmented on its own, pasted over a sample (e.g. Pole SignSymbol)")
    p.add_argument("--paste-prob", type=float, help="the share of samples that get a paste")
    p.add_argument("--cutmix", type=float, metavar="P", help="CutMix: this share of samples get a rectangle (a quarter "
                   "to a half of the crop) of another training sample, augmented on its own, pasted over them")
    p.add_argument("--loss", choices=LOSSES, help="ce (the notebook's), ohem (hard pixels only), dice, lovasz, "
                   "or two joined with + (default ce)")
    p.add_argument("--aux-weight", type=float, metavar="W", help="deep supervision: classifier heads on the coarser "
                   "decoder stages during training, the mean of their losses times W added (unet, fastunet, resunet)")
    p.add_argument("--distill", metavar="MODEL", help="knowledge distillation: also learn this model's class "
                   "probabilities on every training crop (a checkpoint, run folder or shipped name; an ensemble too)")
    p.add_argument("--distill-weight", type=float, metavar="W", help="the weight of the distillation term in the loss")
    p.add_argument("--distill-temperature", type=float, metavar="T", help="both sides' logits divided by this before the softmax")
    p.add_argument("--distill-int8", action=argparse.BooleanOptionalAction, default=None, help="run the teacher "
                   "quantised to INT8 in OpenVINO (CPU only; calibrated on 32 training frames; needs roadseg[openvino])")
    p.add_argument("--class-weights", help="none, median-frequency, median-frequency-augmented or a JSON/YAML list")
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], help="adam is the notebook's")
    p.add_argument("--weight-decay", type=float, help="weight decay (decoupled with adamw)")
    p.add_argument("--schedule", choices=["none", "poly", "cosine", "onecycle"], help="learning-rate schedule, per step")
    p.add_argument("--warmup-epochs", type=float, help="linear warm-up before the schedule")
    p.add_argument("--ema", type=float, metavar="DECAY",
                   help="keep an exponential moving average of the weights (e.g. 0.999) for validation and the saved model")
    p.add_argument("--patience", type=int, help="early stopping: epochs without a better val mIoU")
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="mixed precision (CUDA fp16/bf16; bf16 on CPUs with AVX512-BF16 or AMX); --no-amp for fp32")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None, help="NHWC tensors (faster on CPUs, recent GPUs)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the network; the first step's time includes compiling")
    p.add_argument("--winograd", action=argparse.BooleanOptionalAction, default=None, help="fp32 training on the "
                   "CPU: 3x3 convs with 64+ channels as Winograd F(4x4,3x3) (off: measured 1.1-1.25x faster on Zen 5 only)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars and a line per epoch")
    p.add_argument("--sync-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="SyncBatchNorm across GPUs under torchrun")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="write TensorBoard event files to RUN/tensorboard")
    p.add_argument("--workers", type=int, help="processes that decode and augment batches (DataLoader "
                   "workers); 0 = in the training process (default: from the CPU cores, 0 on 2 or 4 cores)")
    p.add_argument("--cache-gb", type=float, help="GB of decoded frames kept in memory; frames beyond it are "
                   "decoded each epoch (default: half the memory available; 0 = decode every frame every epoch)")
    p.add_argument("--mlflow", action=argparse.BooleanOptionalAction, default=None, help="log settings, metrics and "
                   "the run's files to MLflow: MLFLOW_TRACKING_URI if set, else RUN/mlflow.db (needs roadseg[mlflow])")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    from .config import TrainConfig
    defaults = TrainConfig().to_dict()
    for action in p._actions:  # the flags default to None (so --config can set them); show the real default
        if action.dest in defaults and defaults[action.dest] not in (None, "", []):
            action.help = (action.help or action.dest.replace("_", " ")) + f" (default: {defaults[action.dest]})"
