"""The bodies of the `roadseg` commands: each takes the parsed flags, checks what it will write
(`roadseg.safety`) before writing anything, and calls the package. train, predict, evaluate and demo
apply the CPU allocator setting (`roadseg.device.keep_freed_memory`), which the library never does.

Usage: ``COMMANDS["predict"](args)``  (the CLI's `main` does this)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .errors import RoadsegError


def cmd_synth(a: argparse.Namespace) -> None:
    from .config import parse_size
    from .data.synth import write_dataset
    if a.count < 1:
        raise RoadsegError("--count must be at least 1")
    write_dataset(a.out, a.count, parse_size(a.size), a.seed, progress=True, overwrite=a.overwrite,
                  hood=a.hood, classes=a.classes)
    print(f"wrote {a.count} frames to {a.out}/CameraRGB and {a.out}/CameraMask ({a.classes} class ids)")


def cmd_train(a: argparse.Namespace) -> None:
    from .config import TrainConfig
    from .training import train
    from .training.distributed import is_main_process
    keys = set(TrainConfig.keys())
    overrides = {k: v for k, v in vars(a).items() if k in keys}
    if a.resume and a.init:
        raise RoadsegError("--init and --resume together: a resumed run continues its own weights; "
                           "drop --init, or start a new run with it")
    if a.resume:
        if not (Path(a.resume) / "last.pt").is_file():
            raise RoadsegError(f"{a.resume}: no run to resume (no last.pt there); check the --resume path")
        if a.out and Path(a.out).resolve() != Path(a.resume).resolve():
            raise RoadsegError(f"--out {a.out} differs from --resume {a.resume}; a resumed run stays in its folder")
        base = TrainConfig.resolve(Path(a.resume) / "config.yaml")
        overrides["out"] = a.resume
        cfg = TrainConfig.resolve(a.config, overrides, base=base)
    else:
        cfg = TrainConfig.resolve(a.config, overrides)
    if not cfg.data:
        raise RoadsegError("no dataset given; pass --data DIR (or set data: in --config)")
    _keep_freed_memory(cfg.device)
    run = train(cfg, resume=bool(a.resume), overwrite=a.overwrite,
                inputs={"config": a.config, "model given to --init": _model_file(cfg.init) if cfg.init else None,
                        "encoder weights": cfg.encoder_weights if cfg.encoder_weights not in ("imagenet", "none") else None})
    if is_main_process():
        print(f"run written to {run} (best.pt, last.pt, metrics.csv, curves.png, config.yaml)")


def cmd_evaluate(a: argparse.Namespace) -> None:
    from .evaluation.evaluate import evaluate_frames, format_report, write_json
    from .safety import plan_output
    inputs = {"model": _model_file(a.model), "dataset": a.data}
    if a.json:
        plan_output(a.json, inputs, a.overwrite, "--json")
    if a.report:
        plan_output(a.report, inputs, a.overwrite, "--report", file="index.html")
    _keep_freed_memory(a.device if a.backend == "torch" else "cpu")
    report, worst = evaluate_frames(a.model, a.data, a.format, a.split, a.size, a.full_res, a.batch_size,
                                    a.device, progress=not a.quiet, worst=a.worst if a.report else 0,
                                    backend=a.backend,
                                    winograd=a.winograd, tta=a.tta_scales or a.tta, tile=a.tile, classes=a.classes,
                                    class_map=a.class_map, ignore_index=a.ignore_index, precision=a.precision)
    print(format_report(report))
    if a.report:
        from .evaluation.report import write_report
        print(f"report written to {write_report(report, worst, a.report)}")
    if a.json:
        write_json(report, a.json)
        print(f"scores written to {a.json}")


def cmd_predict(a: argparse.Namespace) -> int:
    from .config import parse_size
    from .data import discover, select_trained_split
    from .evaluation.compare import compare_pairs
    from .inference.files import Outputs, expand_inputs, plan_outputs, predict_files
    from .inference.predictor import Predictor
    from .safety import plan_files, refuse_overlap
    if not a.inputs and not a.compare:
        raise RoadsegError("nothing to predict; give image files/folders or --compare DATA")
    _keep_freed_memory(a.device if a.backend == "torch" else "cpu")
    out = Path(a.out)
    if not 0 <= a.alpha <= 1:
        raise RoadsegError(f"--alpha {a.alpha} is outside 0..1; use e.g. 0.5")
    outputs = Outputs(a.overlay or a.legend, a.alpha, a.legend, a.probs)
    if a.inputs:  # every output checked before the model is even loaded
        plan_outputs(a.inputs, expand_inputs(a.inputs), out, outputs, a.overwrite)
    size = None if not a.size else "native" if a.size == "native" else parse_size(a.size)
    predictor = Predictor.from_checkpoint(a.model, a.device, size, a.backend, a.winograd, a.tta_scales or a.tta,
                                          parse_size(a.tile) if a.tile else None, a.precision)
    if a.compare:
        refuse_overlap(out, {"dataset": a.compare})
        layout = discover(a.compare, a.format)
        pairs = select_trained_split(layout, a.split, predictor.meta.get("data", {}))
        pairs = pairs[: a.limit] if a.limit else pairs
        plan_files([out / f"{p.stem}_compare.png" for p in pairs], [p.image for p in pairs], a.overwrite,
                   [p.image for p in pairs])
        written = compare_pairs(predictor, pairs, out)
        print(f"wrote {_count(written, 'comparison figure')} to {a.out}")
    if a.inputs:
        written, skipped = predict_files(predictor, a.inputs, out, outputs, a.overwrite, progress=not a.quiet,
                                         skip_errors=a.skip_errors)
        print(f"wrote {_count(written, 'file')} to {a.out}")
        if skipped:
            print(f"roadseg: skipped {_count(skipped, 'unreadable input')}", file=sys.stderr)
            return 1
    return 0


def cmd_check(a: argparse.Namespace) -> int:
    from .data.check import check_dataset, fix_palette
    if a.fix_palette:
        if not a.out:
            raise RoadsegError("--fix-palette needs --out DIR for the converted masks")
        written = fix_palette(a.data, a.fix_palette, a.out, a.format, overwrite=a.overwrite)
        print(f"wrote {_count(written, 'id mask')} to {a.out}")
        return 0
    report = check_dataset(a.data, a.format, a.num_classes, a.ignore_index, progress=True, classes=a.classes)
    print(report.text())
    return 0 if report.clean else 1


def cmd_import_keras(a: argparse.Namespace) -> None:
    from .checkpoint import save_checkpoint
    from .config import parse_size
    from .inference.keras_import import import_keras
    from .safety import plan_output
    plan_output(a.out, {"Keras weights": a.weights}, a.overwrite, "output")
    ckpt = import_keras(a.weights, parse_size(a.size))
    save_checkpoint(ckpt, a.out)
    print(f"wrote {a.out}: U-Net with {ckpt['model']['parameters']:,} parameters, "
          f"{len(ckpt['classes']['names'])} classes")


def cmd_export(a: argparse.Namespace) -> None:
    from .config import parse_size
    from .inference.export import export_onnx, export_pt
    from .safety import plan_output
    if a.format == "onnx-int8" and not a.calibration:
        raise RoadsegError("--format onnx-int8 needs --calibration DATA (frames to calibrate the INT8 ranges)")
    models = {f"model {m}": _model_file(m) for m in a.model}
    plan_output(a.out, {**models, "calibration dataset": a.calibration}, a.overwrite, "output")
    if a.format == "onnx":
        path = export_onnx(a.model, a.out, training_weights=a.training_weights, average=a.average)
    elif a.format == "onnx-int8":
        path = export_onnx(a.model, a.out, int8_calibration=a.calibration, calibration_count=a.calibration_frames,
                           training_weights=a.training_weights, average=a.average)
    else:
        card = {}
        for item in a.card:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise RoadsegError(f"--card {item!r} is not KEY=VALUE")
            card[key] = value
        path = export_pt(a.model, a.out, a.half, card, a.logit_adjustment, parse_size(a.size) if a.size else None,
                         a.training_weights, a.average)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def cmd_info(a: argparse.Namespace) -> None:
    from .info import describe
    print(describe(a.model))


def cmd_benchmark(a: argparse.Namespace) -> None:
    import json

    from .config import parse_size
    from .data.imageio import atomic_write
    from .evaluation.benchmark import benchmark, format_table
    from .safety import plan_output
    if a.json:
        plan_output(a.json, {"model": _model_file(a.model), "dataset": a.data}, a.overwrite, "--json")
    rows = benchmark(a.model, a.data, parse_size(a.size) if a.size else None)
    print(format_table(rows))
    if a.json:
        atomic_write(a.json, lambda tmp: tmp.write_text(json.dumps(rows, indent=2)))
        print(f"rows written to {a.json}")


def cmd_models(a: argparse.Namespace) -> None:
    from .inference.zoo import models_table
    print(models_table(measure=a.speed))


def cmd_demo(a: argparse.Namespace) -> None:
    from .demo import run_demo
    _keep_freed_memory("auto")
    run_demo(a.out, a.frames, a.epochs, a.seed, a.batch_size, overwrite=a.overwrite)


def _model_file(model: str) -> Path:
    """The file a --model argument names (a checkpoint, run folder, shipped name or .onnx file)."""
    from .checkpoint import resolve_model_path
    return Path(model) if str(model).endswith(".onnx") else resolve_model_path(model, quiet=True)


def _count(items: Sequence[object], noun: str) -> str:
    """'1 file', '3 files'."""
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _keep_freed_memory(device: str | None) -> None:
    """Keep freed memory in glibc's heap when the work runs on the CPU (see roadseg.device)."""
    from .device import keep_freed_memory, pick_device
    if pick_device(device or "auto").type == "cpu":
        keep_freed_memory()


COMMANDS = {"synth": cmd_synth, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "check": cmd_check, "export": cmd_export, "import-keras": cmd_import_keras, "info": cmd_info, "models": cmd_models,
            "benchmark": cmd_benchmark,
            "demo": cmd_demo}
