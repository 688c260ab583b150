"""Training settings: defaults here, a YAML file over them, command-line flags over that.

The resolved settings are written to RUN/config.yaml and into every checkpoint.

Usage::

    cfg = TrainConfig.resolve(yaml_path="configs/camvid.yaml", overrides={"epochs": 5})
    cfg.save("runs/x/config.yaml")
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Sequence

import yaml

from .errors import InputError


@dataclass
class TrainConfig:
    """Every setting of a training run. Defaults reproduce the notebook."""

    data: str = ""
    out: str = "runs/train"
    format: str = "auto"
    size: str = "96x128"
    resize: str = "bilinear"
    val_fraction: float = 0.2
    train_on: str = "train"             # train, or train+val: the final run of a recipe fixed on val (val then
                                        # only monitors: its scores are of frames seen in training)
    classes: str | None = None          # a named class table (carla, carla08, camvid, generic); None: the format's
    class_map: str | None = None        # masks' ids through a map: a built-in name or a YAML/JSON file
    num_classes: int | None = None      # None: from the format (carla 23, camvid 11) or the masks
    ignore_index: int | str | None = "auto"  # auto: none for carla/generic, 11 for camvid
    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    arch: str = "unet"                  # the network, by registry name (roadseg.nets.names())
    init: str | None = None             # start from this model's weights (a checkpoint or shipped name)
    freeze_encoder: int = 0             # with init: keep the encoder fixed for this many epochs
    base_filters: int = 32
    depth: int = 5
    dropout: float = 0.3
    batch_norm: bool = False
    encoder: str = "resnet34"           # smp-* networks: any smp or timm encoder
    encoder_weights: str = "imagenet"   # smp-* networks: imagenet (downloaded by smp/timm), none, or a saved state dict
    crop: str | None = None             # train on random HxW crops of the `size` samples
    augment: bool = False               # random scale, flip and colour jitter (albumentations)
    aug_scale: list = field(default_factory=lambda: [0.75, 1.5])
    aug_hflip: float = 0.5
    aug_color: float = 0.2
    paste: list = field(default_factory=list)  # class copy-paste: these classes (names or ids) of another sample
    paste_prob: float = 0.5             # over a training sample, with this probability (needs augment or crop)
    cutmix: float = 0.0                 # this share of training samples get a rectangle of another (not with paste)
    loss: str = "ce"                    # ce, ohem, dice, lovasz, or two joined with +
    aux_weight: float = 0.0             # deep supervision: heads on the coarser decoder stages, their loss times
                                        # this added (training only; unet, fastunet, resunet); 0 = off
    distill: str | None = None          # a teacher model whose probabilities the network also learns
    distill_weight: float = 1.0         # the weight of that term (KL divergence, teacher to network)
    distill_temperature: float = 1.0    # both sides' logits divided by this before the softmax
    distill_int8: bool = False          # the teacher quantised to INT8 in OpenVINO (CPU; faster, 99.7% the same argmax)
    class_weights: str = "none"         # none, median-frequency(-augmented) or a JSON/YAML file of weights
    optimizer: str = "adam"             # adam (the notebook), adamw or sgd
    weight_decay: float = 0.0
    schedule: str = "none"              # none, poly, cosine or onecycle (per step)
    warmup_epochs: float = 0.0
    patience: int = 0                   # stop after this many epochs without a better val mIoU; 0 = never
    device: str = "auto"
    amp: bool = True                    # mixed precision: CUDA, and bf16 on CPUs with native bf16
    channels_last: bool = True
    compile: bool = False               # torch.compile the network (first step pays the compile time)
    winograd: bool = False              # fp32 CPU training: 3x3 convs with >= 64 channels as Winograd (opt-in:
                                        # measured faster only on AVX-512 CPUs, where bf16 is the default anyway)
    progress: bool = True
    sync_bn: bool = False               # SyncBatchNorm across GPUs under torchrun
    ema: float = 0.0                    # decay of an exponential moving average of the weights (e.g. 0.999),
                                        # used for validation and saved as the model; 0 = off
    tensorboard: bool = False           # TensorBoard event files in RUN/tensorboard (needs tensorboard)
    workers: int | None = None          # DataLoader worker processes; None: from the cores (0 on a 2-core CPU)
    cache_gb: float | None = None       # decoded samples kept in memory; None: half the memory available
    mlflow: bool = False                # log to MLflow: MLFLOW_TRACKING_URI, else RUN/mlflow.db (needs roadseg[mlflow])

    def __post_init__(self) -> None:
        validate(self)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise InputError(source, f"unknown setting(s) {', '.join(unknown)}",
                             f"known settings: {', '.join(cls.keys())}")
        return cls(**values)

    @classmethod
    def resolve(cls, yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                base: "TrainConfig | None" = None) -> "TrainConfig":
        """Defaults (or `base`), then the YAML file, then the non-None overrides."""
        values = asdict(base) if base is not None else {}
        if yaml_path is not None:
            values.update(load_yaml(yaml_path))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_dict(values, str(yaml_path or "config"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def anchored(self) -> "TrainConfig":
        """A copy whose relative paths are absolute (against the working directory), so that the run's
        config.yaml and checkpoints mean the same files from any directory (a run resumed elsewhere): data and
        out always, the other PATH_SETTINGS where such a file exists; a name stays a name (a shipped model,
        as `--init`/`--distill` read it even beside a folder of that name; imagenet, median-frequency)."""
        from .checkpoint import model_source

        def absolute(key: str, value: str | None) -> str | None:
            if not value or os.path.isabs(os.path.expanduser(value)):
                return value
            local = model_source(value) in ("file", "folder") if key in ("init", "distill") else os.path.exists(value)
            return os.path.abspath(os.path.expanduser(value)) if key in ("data", "out") or local else value
        return replace(self, **{key: absolute(key, getattr(self, key)) for key in PATH_SETTINGS})

    def save(self, path: str | Path) -> None:
        from .data.imageio import atomic_write
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        atomic_write(path, lambda tmp: tmp.write_text(text))


# Settings that name a file or folder (some may also name a built-in: a shipped model, a class map).
PATH_SETTINGS = ("data", "out", "init", "distill", "class_map", "class_weights", "encoder_weights")

_KINDS: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                                      "list": (list, tuple), "None": (type(None),)}
_WORDS = {"str": "text", "int": "a whole number", "float": "a number", "bool": "true or false", "list": "a list",
          "None": "none"}
_CHOICES = {"format": ("auto", "carla", "camvid", "cityscapes", "generic"), "resize": ("bilinear", "nearest"),
            "train_on": ("train", "train+val"),
            "optimizer": ("adam", "adamw", "sgd"), "schedule": ("none", "poly", "cosine", "onecycle"),
            "classes": (None, "carla", "carla08", "camvid", "cityscapes", "generic")}
# (lowest, highest, whether the lowest itself is allowed): every number must also be finite
_RANGES = {"epochs": (1, None, True), "batch_size": (1, None, True), "lr": (0, None, True),
           "weight_decay": (0, None, True), "val_fraction": (0, 1, True), "dropout": (0, 1, True),
           "patience": (0, None, True), "warmup_epochs": (0, None, True), "aug_hflip": (0, 1, True),
           "aug_color": (0, None, True), "base_filters": (1, None, True), "depth": (2, None, True),
           "num_classes": (1, 256, True), "ema": (0, 1, True), "freeze_encoder": (0, None, True),
           "paste_prob": (0, 1, True), "cutmix": (0, 1, True), "distill_weight": (0, None, True),
           "aux_weight": (0, None, True),
           "distill_temperature": (0, None, False), "workers": (0, None, True), "cache_gb": (0, None, True)}
_HIGH_ALLOWED = {"num_classes", "aug_hflip", "paste_prob", "cutmix"}  # ranges whose highest value is itself allowed


def _name(key: str) -> str:
    return f"{key} (--{key.replace('_', '-')})"


def validate(cfg: "TrainConfig") -> None:
    """Check every setting's type and range, naming the first bad one (InputError); nothing else."""
    import math
    for f in fields(cfg):
        value, parts = getattr(cfg, f.name), [p.strip() for p in str(f.type).split("|")]
        ok = isinstance(value, tuple(t for p in parts for t in _KINDS.get(p, (object,))))
        if isinstance(value, bool) and "bool" not in parts:
            ok = False
        if not ok:
            hint = ("YAML reads a number like 1e-3 as text: write 1.0e-3" if isinstance(value, str) and "float" in parts
                    else f"give {' or '.join(_WORDS.get(p, p) for p in parts)}")
            raise InputError(None, f"setting {_name(f.name)} is {value!r}, not {' or '.join(_WORDS.get(p, p) for p in parts)}",
                             hint)
        if f.name in _CHOICES and value not in _CHOICES[f.name]:
            raise InputError(None, f"setting {_name(f.name)} is {value!r}", f"choose one of {', '.join(_CHOICES[f.name])}")
        if f.name in _RANGES and isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high, closed = _RANGES[f.name]
            bad = not math.isfinite(value) or value < low or (value == low and not closed) \
                or (high is not None and (value > high if f.name in _HIGH_ALLOWED else value >= high))
            if bad:
                allowed = f"at least {low}" if closed else f"above {low}"
                if high is not None:
                    allowed += f" and {'at most' if f.name in _HIGH_ALLOWED else 'below'} {high}"
                raise InputError(None, f"setting {_name(f.name)} is {value!r}", f"use a number {allowed}")
    scale = cfg.aug_scale
    if len(scale) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf
                                  for v in scale) or scale[0] > scale[1]:
        raise InputError(None, f"setting {_name('aug_scale')} is {scale!r}", "give two numbers MIN MAX with 0 < MIN <= MAX")
    if cfg.distill_int8 and not cfg.distill:
        raise InputError(None, f"setting {_name('distill_int8')} quantises a teacher, and no teacher is given",
                         "add --distill MODEL, or drop --distill-int8")
    if cfg.paste and cfg.cutmix:
        raise InputError(None, f"settings {_name('paste')} and {_name('cutmix')} both paste another sample over one",
                         "choose one of them")


def parse_size(text: str | Sequence[int]) -> tuple[int, int]:
    """'96x128' (height x width) -> (96, 128)."""
    if not isinstance(text, str):
        h, w = text
        return int(h), int(w)
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(None, f"size '{text}' is not HEIGHTxWIDTH", "write it like 96x128") from None
    if h <= 0 or w <= 0:
        raise InputError(None, f"size '{text}' must be positive", "write it like 96x128")
    return h, w


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping of settings; a missing or malformed file is an InputError."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "config file not found", "check the --config path") from None
    except yaml.YAMLError as e:
        raise InputError(path, f"is not valid YAML ({str(e).splitlines()[0]})", "fix the file") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InputError(path, "must hold a mapping of setting: value", "see configs/ for examples")
    return values
