"""Knowledge distillation (`--distill MODEL`): a trained model, the teacher (a checkpoint, run folder,
exported .pt or shipped name; an ensemble too), labels every training crop with its class
probabilities, and the network learns them beside the masks: the loss gains
``distill_weight * T^2 * KL(teacher || network)`` at temperature T, over the labelled pixels (crop
padding and the ignore id left out). The teacher runs as inference does (`TorchEngine`: batch norms
folded, bf16 where training runs in bf16), or with `--distill-int8` on the CPU quantised to INT8 and run
in OpenVINO (calibrated on 32 training frames spread over the split); it is never trained, and validation does
not use it.

Usage::

    teacher = Teacher.load("ens.pt", table, crop=(288, 384), device=device, amp=True)
    teacher = Teacher.load("ens.pt", table, crop=(288, 384), device=device, amp=True, int8_frames=frames)
    loss = loss + 1.0 * distillation_loss(logits, teacher(images), masks, temperature=1.0, ignore_index=11)
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..checkpoint import build_model, class_table_of, load_checkpoint, resolve_model_path, size_multiple_of
from ..classes import ClassTable
from ..data import spread
from ..device import amp_dtype
from ..errors import InputError
from ..inference.engines import TorchEngine
from .losses import labelled


class Teacher:
    """A frozen model whose logits the network learns from; call it on a batch of training images."""

    def __init__(self, run: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.run = run

    @classmethod
    def load(cls, source: str, table: ClassTable, crop: tuple[int, int], device: torch.device,
             amp: bool, int8_frames: np.ndarray | None = None) -> "Teacher":
        """The teacher `source`, checked against the run: the same classes, the same input (RGB in
        [0,1]) and a size rule the training crops meet. With `int8_frames` (uint8 NxHxWx3 training
        frames for calibration) it runs quantised to INT8 in OpenVINO, on the CPU only."""
        path = resolve_model_path(source, quiet=True)
        ckpt = load_checkpoint(path)
        names = class_table_of(ckpt).names
        if names != table.names:
            raise InputError(path, f"the teacher predicts {len(names)} classes ({', '.join(names[:4])} ...), "
                             f"this run {len(table.names)} ({', '.join(table.names[:4])} ...)",
                             "distill from a model trained on the same class table")
        if [float(v) for v in ckpt["input"].get("range", (0.0, 1.0))] != [0.0, 1.0] \
                or ckpt["input"].get("channels", "RGB") != "RGB":
            raise InputError(path, "the teacher takes input other than RGB in [0,1], which this run's network takes",
                             "distill from a model roadseg trained")
        multiple = size_multiple_of(ckpt)
        if crop[0] % multiple or crop[1] % multiple:
            raise InputError(path, f"the teacher takes sizes in multiples of {multiple}; the training crops are "
                             f"{crop[0]}x{crop[1]}", f"choose a --crop (or --size) in multiples of {multiple}")
        if int8_frames is not None:
            return cls(int8_engine(ckpt, int8_frames, device, path))
        precision = "fp32"
        if amp and amp_dtype(device) is not None:
            precision = "amp" if device.type == "cuda" else "bf16"
        return cls(TorchEngine(build_model(ckpt), device, precision).logits)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.run(images)


def refuse_int8_off_cpu(device: torch.device, path: Any) -> None:
    """--distill-int8 runs the teacher in OpenVINO, which is CPU only: refuse a run on another device."""
    if device.type != "cpu":
        raise InputError(path, f"--distill-int8 runs the teacher in OpenVINO on the CPU; this run trains on {device}",
                         "drop --distill-int8 (on a GPU the teacher runs in mixed precision)")


def int8_engine(ckpt: dict[str, Any], frames: np.ndarray, device: torch.device,
                path: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The teacher quantised to INT8 (`inference.export.quantize_int8`, calibrated on `frames`) in an
    OpenVINO engine: fp32 CPU images in, fp32 logits out."""
    refuse_int8_off_cpu(device, path)
    from ..inference.engines import OpenVinoEngine
    from ..inference.export import onnx_bytes, quantize_int8
    from ..inference.processing import Preprocess
    # as many threads as training has (torchrun gives each process its share)
    engine = OpenVinoEngine(quantize_int8(onnx_bytes(ckpt), frames, Preprocess(ckpt["input"])),
                            threads=torch.get_num_threads())
    return lambda images: engine(images.float())


def calibration_crops(sample: Callable[[int], tuple[np.ndarray, np.ndarray]], count: int, crop: tuple[int, int],
                      frames: int = 32) -> np.ndarray:
    """Up to `frames` training frames spread over the split (`sample(i)` -> (image, mask)), each
    centre-cropped to the training crop (zero-padded where smaller; training crops pad with zeros too,
    centred, which does not change the value ranges calibration reads): what `--distill-int8` calibrates on."""
    out = []
    for i in spread(count, frames):
        image = sample(i)[0]
        top, left = max((image.shape[0] - crop[0]) // 2, 0), max((image.shape[1] - crop[1]) // 2, 0)
        part = image[top:top + crop[0], left:left + crop[1]]
        padded = np.zeros((crop[0], crop[1], 3), np.uint8)  # a frame smaller than the crop: zeros below and right
        padded[:part.shape[0], :part.shape[1]] = part
        out.append(padded)
    return np.stack(out)


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
                      temperature: float = 1.0, ignore_index: int | None = None) -> torch.Tensor:
    """T^2 * the mean over labelled pixels of KL(softmax(teacher/T) || softmax(logits/T)). Computed on the
    whole (N,C,H,W) maps and masked, not on gathered pixel rows: the gather's copies and its backward
    took 3.5x as long (0.42 against 0.12 s for 8 x 11 x 256 x 352 on 2 cores)."""
    keep = labelled(target, logits.shape[1], ignore_index).reshape(target.shape)
    count = keep.sum()
    if not bool(count):
        return logits.sum() * 0
    log_student = (logits.float() / temperature).log_softmax(1)
    log_teacher = (teacher_logits.float() / temperature).log_softmax(1)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(1)
    return kl.masked_fill(~keep, 0).sum() / count * temperature ** 2
