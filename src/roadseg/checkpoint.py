"""The checkpoint format, owned here: one self-contained file with the network (registry name,
settings, weights), the class table, the input description, the data split, the training state and
a model card; written atomically and read with ``torch.load(weights_only=True)`` so a checkpoint
cannot run code. Every writer (trainer, Keras import, export) builds its dict with `make_checkpoint`
or `slim`; every reader goes through `load_checkpoint`, which checks `format_version`.

Format 2 adds ``model.arch`` and ``input.size_multiple``; format-1 files (the shipped ``camvid.pt``
among them) load as the ``unet`` network.

Usage::

    ckpt = make_checkpoint(net, table, input_description((96, 128), "bilinear", net.size_multiple))
    save_checkpoint(ckpt, "runs/x/best.pt")
    ckpt = load_checkpoint("runs/x/best.pt")     # or a shipped name such as "camvid", or a run folder
    model = build_model(ckpt)
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import torch

from . import nets
from .classes import ClassTable
from .data.imageio import atomic_write
from .errors import InputError

FORMAT_VERSION = 2
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# What a resumable training checkpoint holds beyond the model: restored by the trainer (with --ema the
# model entry holds the averaged weights and `training_weights` the ones the optimizer steps; with
# --aux-weight `aux_heads` holds the deep-supervision heads, which no model keeps).
RUN_STATE = ("optimizer", "scheduler", "scaler", "rng", "training_weights", "ema_steps", "aux_heads")
# The parts a user of a model needs (`slim` keeps these).
MODEL_PARTS = ("model", "classes", "input", "data", "training", "card")
_REQUIRED = (("model", "settings", dict), ("model", "state_dict", dict), ("classes", "names", list),
             ("classes", "colors", list), ("input", "size", (list, tuple)))


def input_description(size: tuple[int, int] | list[int], resize: str = "bilinear",
                      size_multiple: int = 16) -> dict[str, Any]:
    """How frames become the network's input: RGB floats in [0,1], resized to `size` (H, W) with
    `resize`; any size the network takes is a multiple of `size_multiple`."""
    return {"size": [int(size[0]), int(size[1])], "resize": resize, "channels": "RGB", "range": [0.0, 1.0],
            "size_multiple": int(size_multiple)}


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of `module`'s state_dict on the CPU, as checkpoints keep weights."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def network_entry(model: nets.SegNet) -> dict[str, Any]:
    """The network part: registry name, settings, weights (on the CPU) and parameter count."""
    return {"arch": model.arch, "settings": dict(model.settings),
            "state_dict": cpu_state(model),
            "parameters": nets.count_parameters(model)}


def make_checkpoint(model: nets.SegNet, table: ClassTable, input: dict[str, Any], data: dict[str, Any] | None = None,
                    training: dict[str, Any] | None = None, card: dict[str, str] | None = None,
                    **run_state: Any) -> dict[str, Any]:
    """The one way a checkpoint dict is built. `run_state` takes the keys of RUN_STATE only."""
    unknown = set(run_state) - set(RUN_STATE)
    if unknown:
        raise ValueError(f"not part of the checkpoint format: {', '.join(sorted(unknown))}")
    ckpt: dict[str, Any] = {"format_version": FORMAT_VERSION, "model": network_entry(model),
                            "classes": table.to_dict(), "input": dict(input)}
    if data is not None:
        ckpt["data"] = data
    if training is not None:
        ckpt["training"] = training
    if card:
        ckpt["card"] = dict(card)
    ckpt.update(run_state)
    return ckpt


def slim(ckpt: dict[str, Any], half: bool = False, card: dict[str, str] | None = None) -> dict[str, Any]:
    """The parts a user of the model needs (no optimizer or random state), weights in fp16 if `half`,
    `card` lines added to the model card."""
    out = {k: ckpt[k] for k in MODEL_PARTS if k in ckpt}
    state = ckpt["model"]["state_dict"]
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    out["model"] = {**ckpt["model"], "state_dict": state}
    out["card"] = {**ckpt.get("card", {}), **(card or {})}
    return {"format_version": FORMAT_VERSION, **out}


def with_training_weights(ckpt: dict[str, Any], path: str | Path | None = None) -> dict[str, Any]:
    """The checkpoint with the weights the optimizer stepped as its model, instead of their moving
    average (a run trained with --ema keeps both in last.pt)."""
    if "training_weights" not in ckpt:
        raise InputError(path, "holds no training weights (only last.pt of a run trained with --ema keeps them)",
                         "pass that run's last.pt, or leave out --training-weights")
    card = {**ckpt.get("card", {}), "weights": "the ones the optimizer stepped, not their moving average (--ema)"}
    return {**ckpt, "model": {**ckpt["model"], "state_dict": ckpt["training_weights"]}, "card": card}


def metadata(ckpt: dict[str, Any]) -> dict[str, Any]:
    """What an exported file (ONNX) carries so it can be used on its own: classes, input, data, card."""
    return {"format_version": FORMAT_VERSION, "arch": ckpt["model"].get("arch", nets.DEFAULT),
            "classes": ckpt["classes"], "input": ckpt["input"], "data": ckpt.get("data", {}),
            "card": ckpt.get("card", {})}


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> Path:
    """Write a checkpoint dict (tensors and plain Python values only) to `path` atomically."""
    ckpt = {**ckpt, "format_version": ckpt.get("format_version", FORMAT_VERSION)}
    return atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def shipped_names() -> list[str]:
    """The models shipped with roadseg (files in roadseg/weights)."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt")) if WEIGHTS_DIR.is_dir() else []


def model_source(name: str | Path) -> str | None:
    """What a model argument names, read in this order: "file", "shipped" (a shipped model's name, never
    hidden by a folder of that name), "folder" (a run folder), or None (nothing)."""
    path = Path(name)
    if path.is_file():
        return "file"
    if isinstance(name, str) and name in shipped_names():
        return "shipped"
    return "folder" if path.is_dir() else None


def resolve_model_path(name: str | Path, quiet: bool = False) -> Path:
    """A checkpoint file, a shipped model name (e.g. 'camvid'), or a run folder (its best.pt, said on
    stderr unless `quiet`). A shipped name is never hidden by a folder of the same name (a dataset
    called camvid/, say)."""
    path, kind = Path(name), model_source(name)
    if kind == "file":
        return path
    if kind == "shipped":
        return WEIGHTS_DIR / f"{name}.pt"
    if kind == "folder":
        best = path / "best.pt"
        if best.is_file():
            if not quiet:
                print(f"roadseg: {path} is a run folder; using {best}", file=sys.stderr)
            return best
        raise InputError(path, "is a folder without best.pt", "pass a checkpoint file or a run folder")
    available = shipped_names()
    hint = f"shipped models: {', '.join(available)}" if available else "pass the path of a .pt checkpoint"
    raise InputError(path, "checkpoint not found", hint)


def load_checkpoint(name: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely (no code execution) and check its format; refuses anything that is
    not a roadseg checkpoint, a newer format, and missing parts, each in one line."""
    path = resolve_model_path(name)
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) < 4 and (b"PK\x03\x04".startswith(head) or head[:1] == b"\x80"):
        raise InputError(path, f"is truncated ({path.stat().st_size} bytes)",
                         "use last.pt or best.pt from the run folder, or copy the file again")
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch's zip format, or a legacy pickle
        raise InputError(path, "is not a roadseg checkpoint", "pass a .pt file written by roadseg")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise InputError(path, f"refused: it holds objects a safe load does not allow ({_first_line(e)})",
                         "only load checkpoints written by roadseg") from None
    except Exception as e:  # any other failure of a corrupt file: zip, pickle or tensor errors
        raise InputError(path, f"is truncated or damaged ({type(e).__name__}: {_first_line(e)})",
                         "use last.pt or best.pt from the run folder, or copy the file again") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise InputError(path, "is not a roadseg checkpoint", "train one with `roadseg train`")
    return upgrade(ckpt, path)


def check_version(found: dict[str, Any], path: str | Path | None = None) -> None:
    """Refuse a checkpoint or an exported file's metadata of a newer format than this roadseg reads."""
    version = found.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(path, f"was written by a newer roadseg (checkpoint format {version}; this one reads "
                         f"up to {FORMAT_VERSION})", "upgrade roadseg: pip install -U roadseg")


def upgrade(ckpt: dict[str, Any], path: str | Path | None = None) -> dict[str, Any]:
    """Check a checkpoint dict's version and parts; bring format 1 up to the current one."""
    check_version(ckpt, path)
    for part, key, kind in _REQUIRED:
        value = ckpt.get(part, {}).get(key) if isinstance(ckpt.get(part), dict) else None
        if not isinstance(value, kind):
            raise InputError(path, f"is not a complete roadseg checkpoint (no {part}.{key})",
                             "the file is damaged or was not written by roadseg")
    if len(ckpt["input"]["size"]) != 2:
        raise InputError(path, "is not a complete roadseg checkpoint (input.size is not HxW)",
                         "the file is damaged or was not written by roadseg")
    model = {"arch": nets.DEFAULT, **ckpt["model"]}
    inp = dict(ckpt["input"])
    if "size_multiple" not in inp and model["arch"] == "unet":
        inp["size_multiple"] = 2 ** (int(model["settings"].get("depth", 5)) - 1)
    return {**ckpt, "format_version": FORMAT_VERSION, "model": model, "input": inp}


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:120] if lines else "no detail"


def build_model(ckpt: dict[str, Any]) -> nets.SegNet:
    """The network a checkpoint describes, with its weights loaded (float32, eval mode)."""
    arch = ckpt["model"].get("arch", nets.DEFAULT)
    model = nets.create(arch, **ckpt["model"]["settings"])
    try:
        state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"]["state_dict"].items()}
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError, AttributeError) as e:
        raise InputError(None, f"checkpoint weights do not fit its network '{arch}' ({_first_line(e)})",
                         "the file is damaged or was not written by roadseg") from None
    return model.eval()


def class_table_of(ckpt: dict[str, Any]) -> ClassTable:
    """The class table a checkpoint (or exported file's metadata) predicts."""
    return ClassTable.from_dict(ckpt["classes"])


def size_multiple_of(ckpt: dict[str, Any]) -> int:
    """The multiple every input size of the checkpoint's network must be (16 when unrecorded)."""
    return int(ckpt["input"].get("size_multiple", 16))
