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

from roadseg.data import LAYOUT_FOLDERS, discover
from roadseg.errors import InputError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=Path, help="a CamVid folder (train/, trainannot/, ...)")
    p.add_argument("--hold", required=True, help="the recording to hold out: the file names' prefix, e.g. 0006R0")
    p.add_argument("--out", required=True, type=Path, help="a new folder, outside this project")
    a = p.parse_args(argv)
    out = a.out.resolve()
    try:
        pairs = discover(a.data, "camvid").splits["train"]
    except InputError as e:
        print(f"roadseg: {e}", file=sys.stderr)
        return 2
    held = [pair for pair in pairs if pair.stem.startswith(a.hold)]
    recordings = sorted({pair.stem.split("_")[0] for pair in pairs})
    if not held or len(held) == len(pairs):
        print(f"roadseg: --hold {a.hold}: matches {len(held)} of {len(pairs)} training frames; the recordings "
              f"are {', '.join(recordings)}", file=sys.stderr)
        return 2
    project = Path(__file__).resolve().parents[1]
    if out.exists() or out.is_relative_to(project):
        why = "exists; give a new folder" if out.exists() else "lies inside this project; give a folder outside it"
        print(f"roadseg: {a.out}: {why} (CamVid is research-use data: links to it, not copies)", file=sys.stderr)
        return 2
    for split, chosen in (("train", [pair for pair in pairs if pair not in held]), ("val", held)):
        images, masks = (out / folder for folder in LAYOUT_FOLDERS["camvid"][split])
        images.mkdir(parents=True)
        masks.mkdir(parents=True)
        for pair in chosen:
            (images / pair.image.name).symlink_to(pair.image.resolve())
            (masks / pair.mask.name).symlink_to(pair.mask.resolve())
    print(f"{out}: train {len(pairs) - len(held)} frames ({', '.join(r for r in recordings if r != a.hold)}), "
          f"val {len(held)} ({a.hold})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
