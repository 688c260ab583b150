"""A CamVid split that holds out a whole recording: its val is every training frame of one recording
(0001TP, 0006R0 or 0016E5), its train the other recordings' training frames, as symbolic links (no
copies) in a new folder outside the project.

CamVid's own val (101 frames) comes from 0016E5, the recording that also gives 204 of the 367 training
frames, and the test split has a recording (Seq05VD) that no training frame comes from: a recipe
chosen on val is chosen on frames like those it trained on. A run on this split, scored on its val,
says how a recipe does on a recording it has never seen; `roadseg evaluate --data CAMVID` on the same
run still gives the in-recording score.

Usage:
    python benchmarks/recording_split.py --data ../shared/data/camvid --hold 0006R0 --out /tmp/camvid-0006R0
    roadseg train --config configs/camvid-fast.yaml --data /tmp/camvid-0006R0 --out runs/fast-0006R0
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=Path, help="a CamVid folder (train/, trainannot/, ...)")
    p.add_argument("--hold", required=True, help="the recording to hold out: the file names' prefix, e.g. 0006R0")
    p.add_argument("--out", required=True, type=Path, help="a new folder, outside this project")
    a = p.parse_args(argv)
    data, out = a.data.resolve(), a.out.resolve()
    frames = sorted((data / "train").glob("*.png"))
    if not frames or not (data / "trainannot").is_dir():
        print(f"roadseg: {a.data}: no train/*.png and trainannot/ here; give a CamVid folder", file=sys.stderr)
        return 2
    held = [f for f in frames if f.name.startswith(a.hold)]
    recordings = sorted({f.name.split("_")[0] for f in frames})
    if not held or len(held) == len(frames):
        print(f"roadseg: --hold {a.hold}: matches {len(held)} of {len(frames)} training frames; the recordings "
              f"are {', '.join(recordings)}", file=sys.stderr)
        return 2
    project = Path(__file__).resolve().parents[1]
    if out.exists() or out.is_relative_to(project):
        why = "exists; give a new folder" if out.exists() else "lies inside this project; give a folder outside it"
        print(f"roadseg: {a.out}: {why} (CamVid is research-use data: links to it, not copies)", file=sys.stderr)
        return 2
    for split, chosen in (("train", [f for f in frames if f not in held]), ("val", held)):
        for folder, source in ((split, "train"), (split + "annot", "trainannot")):
            (out / folder).mkdir(parents=True)
            for f in chosen:
                (out / folder / f.name).symlink_to(data / source / f.name)
    print(f"{out}: train {len(frames) - len(held)} frames ({', '.join(r for r in recordings if r != a.hold)}), "
          f"val {len(held)} ({a.hold})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
