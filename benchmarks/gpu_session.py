"""One lent GPU machine's session as one command: training runs of a recipe side by side on the one GPU,
the CUDA paths (mixed-precision train, resume, evaluate, predict) checked beside them, and each finished
run's training weights exported (fp16, no logit adjustment, at the recipe's size) to OUT for scoring
elsewhere (a run on train alone also gets a first val score there, on the frames that travelled).

A device command has a hard time limit, and a run cut short is lost (its last.pt is too large to bring
back), so the runs are given in priority order: whenever a run's projected end (its median epoch time
so far times the epochs left) passes the deadline, the lowest-priority run still going is stopped,
which gives the others its share of the GPU and the cores.

Nothing outside the repository travels to the machine, and at most 64 MiB of it: `--pack` writes a
CamVid folder's frames as JPEG (quality 95, mean absolute error 1.6 of 255) beside its masks into a
git-ignored folder of the checkout to carry (122 MB of PNG frames -> 37 MB); delete it after the session.

Usage (here, then on the GPU machine, from the repository root):
    python benchmarks/gpu_session.py --pack ../shared/data/camvid .camvid_jpg   # + .camvid_jpg/ in .git/info/exclude
    ../shared/gpu/fetch-wheels.sh                                                # albumentations & co. into .whl/
  then the device tool's run, carrying .whl and .camvid_jpg (timeout_s 580):
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 || exit 1;
    python3 benchmarks/gpu_session.py --data .camvid_jpg --out $OUT --budget 450 \
        --run "w24=--base-filters 24 --workers 4" \
        --run "w24tv=--base-filters 24 --train-on train+val --epochs 141 --workers 4" \
        --run "seed2=--seed 2 --workers 4" 2>&1 | tee $OUT/session.log
Dry run on a CPU (tiny runs, the same code path):
    python benchmarks/gpu_session.py --data .camvid_jpg --out /tmp/s --device cpu --smoke --size 96x128 \
        --run "a=--epochs 2 --size 96x128 --crop 64x96 --workers 0" --run "b=--epochs 2 --size 96x128 --crop 64x96"
"""
from __future__ import annotations

import argparse
import csv
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import torch


ROADSEG = [sys.executable, "-m", "roadseg"]


class Run:
    """One `roadseg train` process and what its metrics.csv says of its progress."""

    def __init__(self, name: str, args: list[str], work: Path) -> None:
        self.name, self.args, self.dir = name, args, work / name
        self.log = work / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.state = "waiting"

    def start(self) -> None:
        self.started = time.time()
        self.proc = subprocess.Popen([*ROADSEG, "train", *self.args, "--out", str(self.dir), "--no-progress"],
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        self.state = "running"

    def epochs(self) -> tuple[int, int, list[float]]:
        """(epochs done, epochs planned, seconds of each epoch done)."""
        done, secs = 0, []
        metrics = self.dir / "metrics.csv"
        if metrics.exists():
            rows = list(csv.reader(metrics.open()))[1:]
            done, secs = len(rows), [float(r[-1]) for r in rows if r]
        planned = 0
        config = self.dir / "config.yaml"
        if config.exists():
            for line in config.read_text().splitlines():
                if line.startswith("epochs:"):
                    planned = int(line.split(":")[1])
        return done, planned, secs

    def projected_end(self) -> float | None:
        done, planned, secs = self.epochs()
        if done < 3 or not planned:
            return None
        return time.time() + (planned - done) * statistics.median(secs[-5:])

    def stop(self, why: str) -> None:
        print(f"[{_stamp()}] stopping {self.name}: {why}", flush=True)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.state = "stopped"


T0 = time.time()


def _stamp() -> str:
    return f"{time.time() - T0:6.0f} s"


def cuda_checks(work: Path, data: str, device: str, report: list[str]) -> None:
    """train (mixed precision) / resume / evaluate / predict on synthetic CARLA frames, and the shipped
    camvid model's evaluation on the device; each step's exit status and seconds go into `report`."""
    synth, run = work / "synth", work / "check"
    steps = [
        ["synth", str(synth), "--count", "48", "--size", "96x128"],
        ["train", "--data", str(synth), "--out", str(run), "--epochs", "2", "--size", "96x128", "--device", device,
         "--amp", "--no-progress"],
        ["train", "--resume", str(run), "--epochs", "3", "--no-progress"],
        ["evaluate", "--model", str(run), "--data", str(synth), "--device", device],
        ["predict", "--model", str(run), "--out", str(work / "pred"), "--device", device, "--quiet",
         str(synth / "CameraRGB")],
        ["evaluate", "--model", "camvid", "--data", data, "--format", "camvid", "--full-res", "--device", device],
    ]
    for step in steps:
        t = time.time()
        p = subprocess.run([*ROADSEG, *step], capture_output=True, text=True)
        tail = (p.stdout + p.stderr).strip().splitlines()[-3:]
        report.append(f"{step[0]} rc={p.returncode} {time.time() - t:.1f} s | " + " / ".join(tail))
        print(f"[{_stamp()}] check: {report[-1]}", flush=True)
    n = len(list((work / "pred").glob("*_color.png")))
    report.append(f"predict wrote {n} colour masks for 48 frames")


def export_training_weights(run: Run, out: Path, size: str) -> str:
    """last.pt's training weights (the ones the optimizer stepped) as a slim fp16 checkpoint OUT/NAME.pt."""
    p = subprocess.run([*ROADSEG, "export", "--model", str(run.dir / "last.pt"), "--training-weights", "--format", "pt",
                        "--half", "--size", size, str(out / f"{run.name}.pt")], capture_output=True, text=True)
    return f"export {run.name} rc={p.returncode} {(p.stdout + p.stderr).strip()[-300:]}"


def score(run: Run, out: Path, data: str, device: str) -> str:
    """A first look at a run trained on train alone: val mIoU of its export at tau 0, 0.75 and 1.0 (on the
    frames that travelled: JPEG, so the figures to record are the ones scored from the PNG frames)."""
    try:
        p = subprocess.run([sys.executable, "benchmarks/logit_adjustment.py", "--model", str(out / f"{run.name}.pt"),
                            "--data", data, "--taus", "0", "0.75", "1.0", "--device", device],
                           capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return f"score {run.name}: not done in 120 s"
    return f"score {run.name} rc={p.returncode}\n" + (p.stdout + p.stderr).strip()[-1500:]


def pack_jpeg(src: Path, dst: Path) -> None:
    """CamVid's train and val frames as JPEG (quality 95) in DST, their masks copied as they are."""
    from PIL import Image
    for split in ("train", "val"):
        shutil.copytree(src / f"{split}annot", dst / f"{split}annot")
        (dst / split).mkdir(parents=True)
        for frame in sorted((src / split).glob("*.png")):
            Image.open(frame).convert("RGB").save(dst / split / f"{frame.stem}.jpg", quality=95)
    size = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
    print(f"wrote {dst} ({size / 2**20:.1f} MiB)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pack", nargs=2, type=Path, metavar=("CAMVID", "DEST"), help="write the JPEG copy to carry, only")
    p.add_argument("--data")
    p.add_argument("--out", type=Path)
    p.add_argument("--config", default="configs/camvid-resunet.yaml")
    p.add_argument("--run", action="append", default=[], metavar="NAME=ARGS",
                   help="a training run (train flags beside --config/--data); highest priority first")
    p.add_argument("--budget", type=float, default=480, help="seconds from start until every run must end")
    p.add_argument("--size", default="352x480", help="input size of the exports")
    p.add_argument("--device", default="cuda")
    p.add_argument("--smoke", action="store_true", help="a dry run: poll every 2 s")
    a = p.parse_args(argv)
    if a.pack:
        if a.pack[1].exists():
            p.error(f"{a.pack[1]} exists: remove it first")
        pack_jpeg(*a.pack)
        return 0
    if not (a.data and a.out and a.run):
        p.error("--data, --out and at least one --run are needed")
    work = Path(tempfile.mkdtemp(prefix="gpu_session."))  # the runs' folders: fresh on a warm machine too
    a.out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}"
          f" {torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''}", flush=True)
    runs = []
    for spec in a.run:
        name, _, extra = spec.partition("=")
        runs.append(Run(name, ["--config", a.config, "--data", a.data, "--device", a.device, *shlex.split(extra)],
                        work))
    for r in runs:
        r.start()
    report: list[str] = []
    checker = threading.Thread(target=cuda_checks, args=(work, a.data, a.device, report))
    checker.start()
    deadline, last_stop = T0 + a.budget, 0.0
    while any(r.state == "running" for r in runs):
        time.sleep(2 if a.smoke else 10)
        for r in runs:
            if r.state == "running" and r.proc.poll() is not None:
                r.state = "done" if r.proc.returncode == 0 else f"failed rc={r.proc.returncode}"
                print(f"[{_stamp()}] {r.name} {r.state} after {time.time() - r.started:.0f} s", flush=True)
                if r.state == "done":
                    report.append(export_training_weights(r, a.out, a.size))
                    if "train+val" not in r.args:
                        report.append(score(r, a.out, a.data, a.device))
                    print(f"[{_stamp()}] " + "\n".join(report[-2:]), flush=True)
        live = [r for r in runs if r.state == "running"]
        if not live:
            break
        if time.time() > deadline:
            for r in live:
                r.stop("deadline")
            break
        ends = {r.name: r.projected_end() for r in live}
        late = [n for n, e in ends.items() if e is not None and e > deadline]
        if late and len(live) > 1 and time.time() - last_stop > 45:
            live[-1].stop(f"{', '.join(late)} projected past the deadline")
            last_stop = time.time()
        elif int(time.time() - T0) % 60 < 10:
            status = ", ".join(f"{r.name} {r.epochs()[0]}/{r.epochs()[1]}" for r in live)
            print(f"[{_stamp()}] {status}", flush=True)
    checker.join()
    with tarfile.open(a.out / "runs.tar.gz", "w:gz") as tar:
        for r in runs:
            for f in (r.log, r.dir / "metrics.csv", r.dir / "config.yaml"):
                if f.exists():
                    tar.add(f, arcname=f"{r.name}/{f.name}")
    for r in runs:
        done, planned, secs = r.epochs()
        med = statistics.median(secs) if secs else float("nan")
        print(f"{r.name}: {r.state}, {done}/{planned} epochs, median {med:.2f} s/epoch", flush=True)
        if r.state != "done" and r.log.exists():
            print("  " + "\n  ".join(r.log.read_text().strip().splitlines()[-8:]), flush=True)
    print("\n".join(report), flush=True)
    return 0 if all(r.state == "done" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
