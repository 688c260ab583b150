"""Starting a run from another model's weights (`--init MODEL`): every tensor whose name and shape
match is copied; when the class tables differ, the classifier's rows (each member's, in an ensemble) are
copied for the classes both tables have (`classes.related`: same name, or one class under two names,
such as Car and Vehicles) and the others keep their fresh initialisation. The network must be the same
architecture.

Usage: ``summary = init_from(model, "camvid", table)  # {'source', 'taken', 'total', 'new', 'classes'}``
"""
from __future__ import annotations

from typing import Any

from ..checkpoint import load_checkpoint, resolve_model_path
from ..classes import ClassTable, related
from ..errors import InputError
from ..nets import SegNet


def is_classifier(key: str) -> bool:
    """Whether a state-dict key is a classifier's (its rows are the classes): `classifier.weight`,
    smp's `classifier.0.weight`, an ensemble member's `members.0.classifier.weight`."""
    return "classifier" in key.split(".")[:-1]


def init_from(model: SegNet, source: str, table: ClassTable) -> dict[str, Any]:
    """Copy what fits from the checkpoint `source` into `model` (in place); one line says what."""
    path = resolve_model_path(source, quiet=True)
    ckpt = load_checkpoint(path)
    arch = ckpt["model"]["arch"]
    if arch != model.arch:
        raise InputError(path, f"is a '{arch}' network; this run trains '{model.arch}'",
                         f"pass --arch {arch} to fine-tune it, or an --init of a '{model.arch}' network")
    src = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"]["state_dict"].items()}
    src_names, same_table = ckpt["classes"]["names"], ckpt["classes"]["names"] == table.names
    rows = related(src_names, table.names)
    state = model.state_dict()
    taken, new, partial = [], [], []
    for key, value in state.items():
        if key in src and src[key].shape == value.shape and (same_table or not is_classifier(key)):
            state[key] = src[key].to(value.dtype)
            taken.append(key)
        elif is_classifier(key) and key in src and rows and src[key].shape[1:] == value.shape[1:] \
                and src[key].shape[0] == len(src_names) and value.shape[0] == table.num_classes:
            merged = value.clone()
            for target, origin in rows.items():
                merged[target] = src[key][origin]
            state[key] = merged
            partial.append(key)
        else:
            new.append(key)
    model.load_state_dict(state)
    classes = sorted(table.names[t] for t in rows) if not same_table else []
    line = f"--init {source}: took {len(taken)} of {len(state)} tensors"
    if partial:
        line += f"; classifier rows of {len(rows)} shared classes ({', '.join(classes)})"
    if new:
        line += f"; new: {', '.join(new[:4])}{' ...' if len(new) > 4 else ''}"
    print(line, flush=True)
    return {"source": str(source), "path": str(path), "taken": len(taken), "total": len(state), "new": new,
            "classifier_rows": classes}


def set_encoder_trainable(model: SegNet, trainable: bool) -> None:
    """Freeze or release the network's encoder (`SegNet.encoder_parameters`)."""
    for p in model.encoder_parameters():
        p.requires_grad_(trainable)

