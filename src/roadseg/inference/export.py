"""Exporting checkpoints: a slim (optionally half-precision) .pt for shipping, or ONNX with dynamic
batch and size for onnxruntime, checked against PyTorch on export.

Usage::

    export_pt("runs/camvid/best.pt", "camvid.pt", half=True, card={"license": "..."})
    export_onnx("runs/camvid/best.pt", "camvid.onnx")      # CLI: roadseg export --model CKPT --format onnx OUT
"""
from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..checkpoint import (build_model, check_version, class_table_of, load_checkpoint, make_checkpoint, metadata,
                          save_checkpoint, size_multiple_of, slim, with_training_weights)
from ..data.imageio import atomic_write
from ..errors import InputError, require
from ..nets import check_size, create
from .engines import onnx_session
from .processing import Preprocess

ONNX_OPSET = 17


def training_class_weights(ckpt: dict[str, Any]) -> torch.Tensor:
    """The class weights the checkpoint was trained with (stored, or recomputed from its training data)."""
    from ..data import SampleCache, discover, select_trained_split
    from ..data.class_weights import class_weights
    stored = ckpt.get("training", {}).get("class_weights")
    if stored:
        return torch.tensor(stored, dtype=torch.float32)
    config, data = ckpt.get("training", {}).get("config", {}), ckpt.get("data", {})
    spec = config.get("class_weights", "none")
    if spec in (None, "none"):
        raise InputError(None, "the checkpoint was trained without class weights", "logit adjustment needs them")
    layout = discover(data["root"], data.get("format", "auto"))
    train = select_trained_split(layout, "train", data)
    cache = SampleCache.load(train, tuple(ckpt["input"]["size"]), resize=ckpt["input"].get("resize", "bilinear"))
    classes = ckpt["classes"]
    return class_weights(spec, cache.counts, len(classes["names"]), classes.get("ignore_index"))


def adjust_logits(ckpt: dict[str, Any], tau: float) -> dict[str, Any]:
    """Post-hoc logit adjustment for a class-weighted model: add -tau*log(weight) to the classifier bias,
    undoing part of the prior the weights pushed into the logits (Menon et al., 2021)."""
    if "classifier.bias" not in ckpt["model"]["state_dict"]:
        raise InputError(None, f"a '{ckpt['model']['arch']}' network has no classifier bias to adjust",
                         "adjust the models that go into an ensemble: give them all with --model")
    weights = training_class_weights(ckpt)
    shift = -tau * torch.log(weights.clamp(min=1e-6))
    state = dict(ckpt["model"]["state_dict"])
    state["classifier.bias"] = state["classifier.bias"].float() + shift
    card = {**ckpt.get("card", {}), "logit_adjustment": f"tau={tau}: classifier bias += -tau*log(class weight) "
            f"({', '.join(f'{v:+.3f}' for v in shift.tolist())})"}
    return {**ckpt, "model": {**ckpt["model"], "state_dict": state}, "card": card}


def load_for_export(model: str | Path | Sequence[str | Path], training_weights: bool = False,
                    logit_adjustment: float = 0.0, average: str | None = None) -> dict[str, Any]:
    """The checkpoint to export: its model weights, or with `training_weights` the ones the optimizer
    stepped (an --ema run's last.pt) instead of their average, logit-adjusted by `logit_adjustment`.
    Several models become one ensemble averaging `average` (`ensemble_checkpoint`), each member
    prepared so first."""
    models = [model] if isinstance(model, (str, Path)) else list(model)
    if average is not None and len(models) < 2:
        raise InputError(None, "--average is how an ensemble combines its members", "give --model twice or more")
    ckpts = []
    for m in models:
        ckpt = load_checkpoint(m)
        ckpt = with_training_weights(ckpt, m) if training_weights else ckpt
        ckpts.append(adjust_logits(ckpt, logit_adjustment) if logit_adjustment else ckpt)
    if len(ckpts) == 1:
        return ckpts[0]
    return ensemble_checkpoint(ckpts, models, average or "probabilities")


def ensemble_checkpoint(ckpts: Sequence[dict[str, Any]], names: Sequence[str | Path],
                        average: str = "probabilities") -> dict[str, Any]:
    """One checkpoint running the networks of `ckpts` (same classes and preprocessing; `names` for the
    messages) as a `roadseg.nets.ensemble` averaging `average`, at the first one's input size. Members
    that are ensembles give their own members; the card keeps the lines every member shares and names
    the members."""
    def preprocessing(ckpt: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in ckpt["input"].items() if k not in ("size", "size_multiple")}

    first, specs, state = ckpts[0], [], {}
    for ckpt, name in zip(ckpts, names):
        if ckpt["classes"] != first["classes"]:
            raise InputError(name, f"predicts other classes than {names[0]}", "ensemble models of one class table")
        if preprocessing(ckpt) != preprocessing(first):
            raise InputError(name, f"preprocesses its frames otherwise than {names[0]}",
                             "ensemble models trained with the same normalisation and resize")
        model = ckpt["model"]
        nested = model["arch"] == "ensemble"
        # (spec, key prefix in this checkpoint's state) of each network it adds
        parts = [(m, f"members.{i}.") for i, m in enumerate(model["settings"]["members"])] if nested else [(model, "")]
        for part, prefix in parts:
            state.update({f"members.{len(specs)}.{k[len(prefix):]}": v for k, v in model["state_dict"].items()
                          if k.startswith(prefix)})
            specs.append({"arch": part["arch"], "settings": part["settings"]})
    settings = {k: first["model"]["settings"][k] for k in ("in_channels", "num_classes")}
    net = create("ensemble", members=specs, average=average, **settings)
    shared = {k: v for k, v in first.get("card", {}).items() if all(c.get("card", {}).get(k) == v for c in ckpts)}
    mean = "logits" if average == "logits" else "class probabilities"
    card = {**shared, "ensemble": f"the mean {mean} of {len(specs)} networks "
            f"({', '.join(s['arch'] for s in specs)}) from {', '.join(str(n) for n in names)}"}
    ckpt = make_checkpoint(net, class_table_of(first), {**first["input"], "size_multiple": net.size_multiple},
                           first.get("data", {}), card=card)
    ckpt = {**ckpt, "model": {**ckpt["model"], "state_dict": state}}  # the members' weights, in their precision
    build_model(ckpt)  # an InputError unless they fit
    return ckpt


def export_pt(model: str | Path | Sequence[str | Path], out: str | Path, half: bool = False,
              card: dict[str, str] | None = None, logit_adjustment: float = 0.0,
              size: tuple[int, int] | None = None, training_weights: bool = False,
              average: str | None = None) -> Path:
    """Write a slim checkpoint (loads with roadseg like any other), optionally logit-adjusted, and
    optionally run at another input `size` than it was trained at."""
    ckpt = load_for_export(model, training_weights, logit_adjustment, average)
    if size is not None:
        check_size(size, size_multiple_of(ckpt))
        ckpt = {**ckpt, "input": {**ckpt["input"], "size": [int(size[0]), int(size[1])]}}
    return save_checkpoint(slim(ckpt, half, card), out)


def onnx_bytes(ckpt: dict[str, Any]) -> bytes:
    """The checkpoint's network as an ONNX model: input 'images' (N,C,H,W) float in [0,1], output
    'logits' (N,classes,H,W); batch, height and width are dynamic (multiples of the network's
    size_multiple, recorded in the metadata)."""
    import warnings
    require("onnx", "onnx", "ONNX export")
    model = build_model(ckpt)
    h, w = ckpt["input"]["size"]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, model.in_channels, h, w),), buf, dynamo=False,
                          input_names=["images"], output_names=["logits"], opset_version=ONNX_OPSET,
                          dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                        "logits": {0: "batch", 2: "height", 3: "width"}})
    return with_metadata(buf.getvalue(), ckpt)


def with_metadata(data: bytes, ckpt: dict[str, Any]) -> bytes:
    """Store the class table and input description in the ONNX model's metadata, so an .onnx file
    can be used on its own (``roadseg predict --model m.onnx``)."""
    onnx = require("onnx", "onnx", "ONNX export")
    proto = onnx.load_from_string(data)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "roadseg", json.dumps(metadata(ckpt))
    return proto.SerializeToString()


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The roadseg metadata of an exported .onnx file."""
    onnx = require("onnx", "onnx", "reading an .onnx model")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf and file errors of a damaged file
        raise InputError(path, f"is not a readable ONNX model ({type(e).__name__})", "export it again") from None
    for entry in proto.metadata_props:
        if entry.key == "roadseg":
            meta = json.loads(entry.value)
            check_version(meta, path)
            return meta
    raise InputError(path, "is an ONNX model without roadseg metadata", "export it with `roadseg export`")


def quantize_int8(data: bytes, calibration: np.ndarray, preprocess: Preprocess) -> bytes:
    """Post-training static INT8 quantisation (QDQ, per-channel weights) calibrated on uint8 frames
    (N,H,W,3) at the model's input size, preprocessed as the model's predictor does.

    The graph first goes through onnxruntime's quantisation pre-processing (its graph optimisation and
    ONNX shape inference; the symbolic shape inference is skipped: it gives up on the transposed-conv
    decoders' dynamic sizes): the same INT8 scores on the shipped models, quantised 10-20% faster."""
    q = require("onnxruntime.quantization", "onnx", "INT8 export")
    from onnxruntime.quantization.shape_inference import quant_pre_process
    CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static = (
        q.CalibrationDataReader, q.CalibrationMethod, q.QuantFormat, q.QuantType, q.quantize_static)

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.array_split(calibration, max(len(calibration) // 4, 1)))

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {"images": preprocess.tensor(batch).numpy()}

    with tempfile.TemporaryDirectory() as tmp:
        src, prepared, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(dst), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        return dst.read_bytes()


def calibration_frames(ckpt: dict[str, Any], data: str | Path, count: int = 32, fmt: str = "auto") -> np.ndarray:
    """Up to `count` training frames of a dataset at the model's input size, for INT8 calibration."""
    from ..data import SampleCache, discover, select_trained_split, spread
    layout = discover(data, fmt)
    pairs = select_trained_split(layout, "train", ckpt.get("data", {}))
    cache = SampleCache.load([pairs[i] for i in spread(len(pairs), count)], tuple(ckpt["input"]["size"]),
                             resize=ckpt["input"]["resize"])
    return cache.images.numpy()


def export_onnx(model: str | Path | Sequence[str | Path], out: str | Path, tolerance: float = 1e-4,
                int8_calibration: str | Path | None = None, calibration_count: int = 32,
                training_weights: bool = False, average: str | None = None) -> Path:
    """Write ONNX and check onnxruntime's logits against PyTorch's (max abs difference <= tolerance).

    With `int8_calibration` (a dataset folder) the model is quantised to INT8 after the check."""
    ckpt = load_for_export(model, training_weights, average=average)
    data = onnx_bytes(ckpt)
    net = build_model(ckpt)
    h, w = ckpt["input"]["size"]
    x = torch.rand(2, net.in_channels, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = net(x).numpy()
    got = onnx_session(data).run(None, {"images": x.numpy()})[0]
    diff = float(np.abs(got - expected).max())
    if diff > tolerance:
        raise InputError(out, f"ONNX logits differ from PyTorch's by {diff:.2e} (> {tolerance})",
                         "report this; use the torch backend meanwhile")
    if int8_calibration is not None:
        frames = calibration_frames(ckpt, int8_calibration, calibration_count)
        data = with_metadata(quantize_int8(data, frames, Preprocess(ckpt["input"])),
                             {**ckpt, "card": {**ckpt.get("card", {}), "quantization": "int8 static (QDQ)"}})
    return atomic_write(out, lambda tmp: tmp.write_bytes(data))
