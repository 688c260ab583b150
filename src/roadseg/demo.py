"""The demo: synthesise CARLA-format frames, train the notebook's U-Net on them, evaluate on the
held-out part, write predictions, comparison figures and curves, and say where everything is.

Usage: ``run_demo("runs/demo", frames=300, epochs=25)``  (CLI: ``roadseg demo``)
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from .config import TrainConfig
from .data import discover, select_split
from .data.synth import write_dataset
from .errors import InputError
from .safety import refuse_deleting_here
from .evaluation.compare import compare_pairs
from .evaluation.evaluate import evaluate, format_report, write_json
from .inference.files import Outputs, predict_files
from .inference.predictor import Predictor
from .training import train

DEMO_MARKER = ".roadseg-demo"


def _fresh_folder(out: Path, overwrite: bool) -> None:
    """Keep an existing non-empty `out` unless `overwrite` (as train does); even then, only an earlier
    demo's folder is emptied, never any other folder or the working folder."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file, not a folder", "choose another --out")
    if out.exists() and any(out.iterdir()):
        if not (out / DEMO_MARKER).exists():
            raise InputError(out, "exists and is not a roadseg demo folder", "choose another --out")
        if not overwrite:
            raise InputError(out, "holds an earlier demo run (kept)",
                             "pass --overwrite to replace it, or choose another folder with --out runs/demo2")
        refuse_deleting_here(out)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).touch()


def run_demo(out: str | Path = "runs/demo", frames: int = 300, epochs: int = 25, seed: int = 0,
             batch_size: int = 8, overwrite: bool = False) -> dict:
    """Run the whole pipeline; returns the evaluation report of the held-out frames."""
    out = Path(out)
    if frames < 10:
        raise InputError(None, f"--frames {frames} is too few", "use at least 10")
    _fresh_folder(out, overwrite)
    t0 = time.perf_counter()
    data = out / "data"
    print(f"[1/4] synthesising {frames} CARLA-format frames (640x480) in {data}", flush=True)
    write_dataset(data, frames, seed=seed, progress=True)
    print(f"[2/4] training the notebook's U-Net for {epochs} epochs at 96x128, batch {batch_size} (80/20 split)",
          flush=True)
    cfg = TrainConfig(data=str(data), out=str(out / "train"), epochs=epochs, seed=seed, batch_size=batch_size)
    run = train(cfg)
    best = run / "best.pt"
    print("[3/4] evaluating best.pt on the held-out frames", flush=True)
    report = evaluate(best, data, split="val")
    write_json(report, out / "eval.json")
    print(format_report(report))
    print("[4/4] predicting the held-out frames", flush=True)
    predictor = Predictor.from_checkpoint(best)
    pairs = select_split(discover(data), "val", cfg.val_fraction, cfg.seed)
    compare_pairs(predictor, pairs[:6], out / "compare")
    predict_files(predictor, [str(p.image) for p in pairs[:6]], out / "predictions", Outputs(overlay=True, legend=True))
    minutes = (time.perf_counter() - t0) / 60
    print(f"\ndone in {minutes:.1f} min. Outputs in {out}:")
    for path, what in [(data, "synthetic CARLA-format frames (CameraRGB/, CameraMask/)"),
                       (run / "best.pt", "best checkpoint (roadseg info / predict / evaluate take it)"),
                       (run / "metrics.csv", "per-epoch loss, pixel accuracy and mIoU"),
                       (run / "curves.png", "training curves"),
                       (out / "eval.json", "held-out scores"),
                       (out / "compare", "image | true mask | predicted mask figures"),
                       (out / "predictions", "id masks, colour masks and overlays")]:
        print(f"  {str(path):<40} {what}")
    print(f"val pixel accuracy {report['pixel_accuracy']:.4f}, val mean IoU {report['mean_iou']:.4f} "
          f"({report['num_images']} held-out frames)")
    return report
