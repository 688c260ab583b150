"""Building a training run from its settings: the data (decoded, split, checked), the network from
the registry, and the parts around it (DDP wrapper, optimizer, schedule, loss, augmenter, scaler).
Everything here checks settings and reads files; nothing is written.

Usage::

    data = prepare_data(cfg)
    parts = build_parts(cfg, data, world)      # parts.model, parts.net, parts.optimizer, ...
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch

from .. import nets
from ..classes import ClassTable, class_table, mapped_table, resolve_ignore
from ..config import TrainConfig, parse_size
from ..data import Layout, SampleCache, discover, split_pairs
from ..data.augment import Augmenter
from ..data.class_weights import AUGMENTED, class_weights
from ..data.loader import augmented_counts, cache_budget, ranks_here
from ..device import amp_dtype
from ..errors import InputError
from .aux import AuxHeads, WithHeads
from .distill import Teacher, calibration_crops
from .distributed import World, is_main_process
from .init import init_from
from .losses import make_loss
from .optim import make_optimizer, make_scheduler

# Config keys that are network settings; a network takes those its constructor accepts.
NETWORK_KEYS = ("base_filters", "depth", "dropout", "batch_norm", "encoder", "encoder_weights")


@dataclass
class PreparedData:
    """Decoded, validated train and val samples with the class table they use."""

    layout: Layout
    table: ClassTable
    size: tuple[int, int]
    train: SampleCache
    val: SampleCache


def network_settings(cfg: TrainConfig, num_classes: int, in_channels: int = 3) -> dict[str, Any]:
    """The settings for `cfg.arch`: the network keys it accepts; a key changed from its default that
    the network does not take is an error naming it."""
    accepted = nets.accepted_settings(cfg.arch)
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    settings: dict[str, Any] = {"in_channels": in_channels, "num_classes": num_classes}
    for key in NETWORK_KEYS:
        value = getattr(cfg, key)
        if key in accepted:
            settings[key] = value
        elif value != defaults[key]:
            raise InputError(None, f"network '{cfg.arch}' has no setting {key}",
                             f"its settings are {', '.join(accepted)}; leave --{key.replace('_', '-')} out")
    return settings


def size_multiple(cfg: TrainConfig) -> int:
    """The input-size multiple of the network `cfg` describes (built on the meta device: no memory)."""
    with torch.device("meta"):
        return nets.create(cfg.arch, **network_settings(cfg, 2)).size_multiple


def prepare_data(cfg: TrainConfig) -> PreparedData:
    """Discover, split, decode and validate the dataset; nothing is written."""
    size = parse_size(cfg.size)
    nets.check_size(size, size_multiple(cfg))
    layout = discover(cfg.data, cfg.format)
    train_pairs, val_pairs = split_pairs(layout, cfg.val_fraction, cfg.seed, cfg.train_on)
    table_name = cfg.classes or layout.format
    ignore = resolve_ignore(cfg.ignore_index, table_name)
    lut = None
    if cfg.class_map:
        table_name, lut, ignore = mapped_table(cfg.class_map, layout.format, cfg.classes)
    progress = cfg.progress and is_main_process()
    budget = cache_budget(cfg.cache_gb, ranks_here())
    train = SampleCache.load(train_pairs, size, resize=cfg.resize, progress=progress, class_map=lut,
                             cache_bytes=budget)
    budget = max(budget - train.cached * size[0] * size[1] * 4, 0)
    val = SampleCache.load(val_pairs, size, resize=cfg.resize, progress=progress, class_map=lut, cache_bytes=budget)
    num_classes = cfg.num_classes
    if num_classes is None and table_name == "generic":
        num_classes = inferred_class_count(train, val, ignore)
    table = class_table(table_name, num_classes, ignore)
    for cache in (train, val):
        cache.check_ids(table.num_classes, ignore)
    return PreparedData(layout, table, size, train, val)


def inferred_class_count(train: SampleCache, val: SampleCache, ignore: int | None) -> int:
    """Largest id + 1, refused when that id stands far above the others (a lone 255 for void pixels
    would otherwise make a 256-class model)."""
    ids = sorted(i for i in set(train.ids()) | set(val.ids()) if i != ignore)
    if len(ids) >= 2 and ids[-1] - ids[-2] > 16:
        raise InputError(None, f"class id {ids[-1]} stands far above the others (up to {ids[-2]}); counting "
                         f"classes from it would make {ids[-1] + 1}",
                         f"if id {ids[-1]} marks void pixels pass --ignore-index {ids[-1]}, else set --num-classes")
    return (ids[-1] if ids else 0) + 1


@dataclass
class Parts:
    """The network and everything that trains it."""

    model: nets.SegNet                 # the network itself (its state_dict is what checkpoints hold)
    net: torch.nn.Module               # what the loop calls: the model, or DDP / torch.compile around it
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: Any
    class_weights: torch.Tensor | None
    augmenter: Augmenter | None
    scaler: torch.amp.GradScaler
    memory_format: torch.memory_format
    init: dict[str, Any] | None = None  # what --init copied (training.init_from's summary)
    teacher: Teacher | None = None      # --distill's model
    aux: AuxHeads | None = None         # --aux-weight's training-only heads (deep supervision)


def build_parts(cfg: TrainConfig, data: PreparedData, world: World, fresh: bool = True) -> Parts:
    """The network (seeded from cfg.seed, then --init's weights if `fresh`: a resumed run restores its
    own) and its optimizer, schedule, loss, augmenter and scaler."""
    device = world.device
    torch.manual_seed(cfg.seed)
    model = nets.create(cfg.arch, **network_settings(cfg, data.table.num_classes))
    init = init_from(model, cfg.init, data.table) if cfg.init and fresh else None
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format)
    aux = None
    if cfg.aux_weight:
        aux = AuxHeads.attach(model, data.table.num_classes).to(device, memory_format=memory_format)
    # fp32 steps on the CPU run the wide 3x3 convs as Winograd (bf16 autocast steps do not)
    if cfg.winograd and device.type == "cpu" and not cfg.compile:
        from ..accel.training import use_for_training
        use_for_training(model)
    # bf16 steps on the CPU upsample by 2x and batch-normalise with the native kernels (PyTorch's
    # channels-last bf16 backward of both is slow)
    if cfg.amp and device.type == "cpu" and not cfg.compile:
        from ..accel.norm import use_native_norm
        from ..accel.resize import use_native_resize
        use_native_resize(model)
        for module in (model, aux):
            if module is not None:
                use_native_norm(module)
    net: torch.nn.Module = model
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel
        if cfg.sync_bn and cfg.batch_norm and device.type == "cuda":
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = DistributedDataParallel(net if aux is None else WithHeads(net, aux),  # the heads' gradients averaged too
                                      device_ids=[device.index] if device.type == "cuda" else None,
                                      find_unused_parameters=cfg.freeze_encoder > 0)
    if cfg.compile:
        net = torch.compile(net)
    params = list(model.parameters()) + (list(aux.parameters()) if aux is not None else [])
    optimizer = make_optimizer(params, cfg.optimizer, cfg.lr, cfg.weight_decay)
    batch = world.local_batch(cfg.batch_size)
    steps = math.ceil(math.ceil(len(data.train) / world.size) / batch)
    scheduler = make_scheduler(optimizer, cfg.schedule, cfg.epochs, steps, cfg.warmup_epochs)
    table = data.table
    augmenter = None
    # what a training step sees; without --crop, scaled frames are padded or cropped back to the training
    # size (a batch needs one size)
    crop = parse_size(cfg.crop) if cfg.crop else tuple(data.size)
    if cfg.augment or cfg.crop or cfg.paste or cfg.cutmix:
        nets.check_size(crop, model.size_multiple)
        augmenter = Augmenter(crop, tuple(cfg.aug_scale) if cfg.augment else (1.0, 1.0),
                              cfg.aug_hflip if cfg.augment else 0.0, cfg.aug_color if cfg.augment else 0.0,
                              fill_mask=table.ignore_index if table.ignore_index is not None else 0,
                              paste=paste_ids(cfg.paste, table), paste_prob=cfg.paste_prob, cutmix=cfg.cutmix)
    counts = data.train.counts
    if cfg.class_weights == AUGMENTED and augmenter is not None:
        counts = augmented_counts(data.train, augmenter, cfg.seed)  # what epoch 0 shows the network
    weights = class_weights(cfg.class_weights, counts, table.num_classes, table.ignore_index)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and amp_dtype(device) == torch.float16)
    teacher = None
    if cfg.distill:
        frames = calibration_crops(data.train.sample, len(data.train), crop) if cfg.distill_int8 else None
        teacher = Teacher.load(cfg.distill, table, crop, device, cfg.amp, int8_frames=frames)
    return Parts(model, net, optimizer, scheduler, make_loss(cfg.loss, table.ignore_index, weights), weights,
                 augmenter, scaler, memory_format, init, teacher, aux)


def paste_ids(classes: list, table: ClassTable) -> tuple[int, ...]:
    """--paste's classes (names or ids) as ids of the data's class table (not its ignore id)."""
    ids = [table.class_id(key) for key in classes]
    for key, found in zip(classes, ids):
        if found is None or found == table.ignore_index:
            raise InputError(None, f"setting paste (--paste) names class {key!r}, which this data's classes do not have",
                             f"use an id or one of {', '.join(table.names)}")
    return tuple(ids)
