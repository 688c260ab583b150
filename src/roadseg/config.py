"""Training settings: defaults here, a YAML file over them, command-line flags over that.

The resolved settings are written to RUN/config.yaml and into every checkpoint.

Usage::

    cfg = TrainConfig.resolve(yaml_path="configs/camvid.yaml", overrides={"epochs": 5})
    cfg.save("runs/x/config.yaml")
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
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
    num_classes: int | None = None      # None: from the format (carla 23, camvid 11) or the masks
    ignore_index: int | str | None = "auto"  # auto: none for carla/generic, 11 for camvid
    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    arch: str = "unet"                  # the network, by registry name (roadseg.nets.names())
    base_filters: int = 32
    depth: int = 5
    dropout: float = 0.3
    batch_norm: bool = False
    crop: str | None = None             # train on random HxW crops of the `size` samples
    augment: bool = False               # random scale, flip and colour jitter (albumentations)
    aug_scale: list = field(default_factory=lambda: [0.75, 1.5])
    aug_hflip: float = 0.5
    aug_color: float = 0.2
    loss: str = "ce"                    # ce, ohem, dice, lovasz, or two joined with +
    class_weights: str = "none"         # none, median-frequency or a JSON/YAML file of weights
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

    def save(self, path: str | Path) -> None:
        from .data.imageio import atomic_write
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        atomic_write(path, lambda tmp: tmp.write_text(text))


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
