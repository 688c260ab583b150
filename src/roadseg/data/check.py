"""`roadseg check`: read a whole dataset once and report every problem, without training.

Reports the pair count, unmatched and foreign files, unreadable or truncated files, image/mask
size mismatches, the mask encodings found (index, RGB with the id in channel 0, colour-palette),
the ids present with their pixel shares, ids outside the class table, masks without a labelled
pixel and duplicate frames. `fix_palette` converts colour-palette masks into id masks.

Usage::

    report = check_dataset("data", "auto")
    print(report.text()); exit(0 if report.clean else 1)
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..classes import class_table, id_table, resolve_ignore
from .layouts import Pair, discover
from ..errors import InputError
from ..safety import plan_files, refuse_overlap
from .imageio import _open, atomic_save_png, exif_orientation, mask_ids, read_image

ENCODINGS = {"index": "single-channel index PNG", "rgb-id": "RGB(A) with the id in channel 0",
             "palette": "colour-palette RGB (a colour map, not ids)"}


@dataclass
class Finding:
    """One problem: its kind, the file and the one-line message."""

    kind: str
    path: str
    message: str


@dataclass
class CheckReport:
    root: Path
    format: str
    num_classes: int
    ignore_index: int | None
    pairs: int = 0
    table: str = ""                     # the class table the ids are read with (default: the format's)
    findings: list[Finding] = field(default_factory=list)
    encodings: Counter = field(default_factory=Counter)
    id_pixels: Counter = field(default_factory=Counter)

    @property
    def clean(self) -> bool:
        return not self.findings

    def add(self, kind: str, error: InputError | str, path: Path | str = "") -> None:
        if isinstance(error, InputError):
            self.findings.append(Finding(kind, error.path or str(path), str(error)))
        else:
            self.findings.append(Finding(kind, str(path), f"{path}: {error}" if path else error))

    def text(self) -> str:
        lines = [f"dataset {self.root} ({self.format} layout): {self.pairs} image/mask pairs, "
                 f"class table {self.table or self.format} ({self.num_classes} classes)"]
        if self.encodings:
            lines.append("mask encodings: " + ", ".join(f"{ENCODINGS[k]} x{n}" for k, n in self.encodings.items()))
        total = sum(self.id_pixels.values())
        if total:
            lines.append("ids present (share of pixels):")
            table = self.table or self.format
            names = class_table(table, self.num_classes, self.ignore_index).names if table != "generic" else []
            for i in sorted(self.id_pixels):
                name = names[i] if i < len(names) else ("ignored" if i == self.ignore_index else "")
                lines.append(f"  {i:>3} {name:<14} {self.id_pixels[i] / total:8.3%}")
        if self.clean:
            lines.append("no problems found")
        else:
            kinds = Counter(f.kind for f in self.findings)
            lines.append(f"{len(self.findings)} problems: " + ", ".join(f"{k} x{n}" for k, n in kinds.items()))
            lines += [f"  [{f.kind}] {f.message}" for f in self.findings]
        return "\n".join(lines)


def mask_encoding(image: Image.Image) -> str:
    """'index', 'rgb-id' or 'palette' for a decoded mask image."""
    if image.mode not in ("RGB", "RGBA"):
        return "index"
    arr = np.asarray(image)
    return "rgb-id" if not arr[:, :, 1:3].any() else "palette"


def _check_pair(pair: Pair, report: CheckReport, hashes: dict[str, list[Path]]) -> None:
    try:
        image = read_image(pair.image)
        hashes[hashlib.sha1(image.tobytes() + str(image.shape).encode()).hexdigest()].append(pair.image)
    except InputError as e:
        report.add("unreadable", e)
        image = None
    try:
        decoded = _open(pair.mask, allow_jpeg=False)  # decoded once for the encoding, the ids and the colours
        encoding = mask_encoding(decoded)
        mask = mask_ids(decoded, pair.mask)
        if pair.ids is not None:  # e.g. Cityscapes label ids, read as its 19 train ids
            mask = id_table(pair.ids)[mask]
    except InputError as e:
        report.add("unreadable", e)
        return
    report.encodings[encoding] += 1
    if image is not None and image.shape[:2] != mask.shape:
        stored = _open(pair.image, allow_jpeg=True)
        if exif_orientation(stored) != 1 and stored.size == (mask.shape[1], mask.shape[0]):
            report.add("size-mismatch", f"matches its image {pair.image.name} only before the image's EXIF "
                       f"rotation (orientation {exif_orientation(stored)}), which roadseg applies as viewers do; "
                       "rotate the mask the same way, or save the image without the orientation tag", pair.mask)
        else:
            report.add("size-mismatch", f"is {mask.shape[1]}x{mask.shape[0]} but its image {pair.image.name} is "
                       f"{image.shape[1]}x{image.shape[0]}; image and mask must have the same size", pair.mask)
    if encoding == "palette":
        colours = np.unique(np.asarray(decoded.convert("RGB")).reshape(-1, 3), axis=0)
        report.add("palette-mask", f"looks like a colour map ({len(colours)} colours), not class ids; "
                   "convert it with `roadseg check --fix-palette COLOURS.json --out DIR`", pair.mask)
        return
    ids, counts = np.unique(mask, return_counts=True)
    report.id_pixels.update(dict(zip(ids.tolist(), counts.tolist())))
    bad = [i for i in ids.tolist() if i >= report.num_classes and i != report.ignore_index]
    if bad:
        report.add("id-out-of-range", f"has class ids {bad[:5]} outside 0..{report.num_classes - 1}; "
                   "fix the mask, or set --num-classes", pair.mask)
    labelled = [i for i in ids.tolist() if i != report.ignore_index]
    if not labelled:
        report.add("no-labels", "has no labelled pixel (all ignored); remove it or label it", pair.mask)


def check_dataset(root: str | Path, fmt: str = "auto", num_classes: int | None = None,
                  ignore_index: int | str | None = "auto", progress: bool = False,
                  classes: str | None = None) -> CheckReport:
    """Read every file of the dataset once and collect all problems (raises only if it cannot be read at all)."""
    problems: list[InputError] = []
    try:
        layout = discover(root, fmt, problems)
    except InputError as e:
        if not problems:
            raise
        report = CheckReport(Path(root), fmt, num_classes or 0, None)
        for p in problems:
            report.add(_kind(p), p)
        report.add("no-pairs", e)
        return report
    table = classes or layout.format
    ignore = resolve_ignore(ignore_index, table)
    if num_classes is None:
        num_classes = class_table(table).num_classes if table != "generic" else 256
    report = CheckReport(layout.root, layout.format, num_classes, ignore, table=table)
    for p in problems:
        report.add(_kind(p), p)
    pairs = [p for split in layout.splits.values() for p in split]
    report.pairs = len(pairs)
    hashes: dict[str, list[Path]] = defaultdict(list)
    items = pairs
    if progress:
        from tqdm import tqdm
        items = tqdm(pairs, desc="check", unit="pair", leave=False, disable=None)
    for pair in items:
        _check_pair(pair, report, hashes)
    for paths in hashes.values():
        for dup in paths[1:]:
            report.add("duplicate-frame", f"is the same frame as {paths[0]}; remove one of them", dup)
    ids = set(report.id_pixels) - {report.ignore_index}
    total = sum(report.id_pixels.values())
    if table == "carla" and ids and max(ids) <= 12 and total and report.id_pixels.get(0, 0) / total > 0.05:
        report.add("carla08", "masks use only ids 0..12, with no sky (13) and many pixels at 0: this looks like "
                   "CARLA 0.8 data, where id 0 (None) holds the sky; use --classes carla08", layout.root)
    if 255 in report.id_pixels and report.ignore_index != 255:
        report.add("void-255", "masks use id 255, the common label for void (unlabelled) pixels; if that is what "
                   "it means, pass --ignore-index 255, or it becomes a class of its own", layout.root)
    return report


def _kind(problem: InputError) -> str:
    text = problem.problem
    if "has no mask" in text:
        return "image-without-mask"
    if "has no image" in text:
        return "mask-without-image"
    if "same name" in text:
        return "duplicate-name"
    return "foreign-file"


def load_palette(path: str | Path) -> dict[tuple[int, int, int], int]:
    """A colour -> id map from JSON: a list of [r,g,b] by id, or a mapping of id (or name, in id order) to [r,g,b]."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "palette file not found", "give a JSON list of [r, g, b] colours by class id") from None
    except ValueError as e:
        raise InputError(path, f"is not valid JSON ({e})", "give a JSON list of [r, g, b] colours by class id") from None
    if isinstance(data, dict):
        keys = list(data)
        ids = [int(k) for k in keys] if all(str(k).isdigit() for k in keys) else list(range(len(keys)))
        items = list(zip(ids, data.values()))
    elif isinstance(data, list):
        items = list(enumerate(data))
    else:
        items = []
    palette = {}
    for i, colour in items:
        if not (isinstance(colour, list) and len(colour) == 3 and all(isinstance(c, int) for c in colour)):
            raise InputError(path, f"colour of class {i} is not [r, g, b]", "write each colour as three integers")
        palette[tuple(colour)] = i
    if not palette:
        raise InputError(path, "holds no colours", "give a JSON list of [r, g, b] colours by class id")
    return palette


def fix_palette(root: str | Path, palette_file: str | Path, out: str | Path, fmt: str = "auto",
                unknown_id: int | None = None, overwrite: bool = False) -> list[Path]:
    """Write an id mask into OUT/<mask folder>/<name>.png for every colour-palette mask of the dataset.
    OUT may not be, contain or lie inside the dataset; existing outputs are replaced only with
    `overwrite`. Every mask is converted before the first is written."""
    refuse_overlap(out, {"dataset": root, "palette file": palette_file})
    palette = load_palette(palette_file)
    layout = discover(root, fmt, problems=[])
    lut = {(r << 16) | (g << 8) | b: i for (r, g, b), i in palette.items()}
    jobs = []
    for split in layout.splits.values():
        for pair in split:
            decoded = _open(pair.mask, allow_jpeg=False)
            if mask_encoding(decoded) != "palette":
                continue
            rgb = np.asarray(decoded.convert("RGB")).astype(np.int64)
            code = (rgb[:, :, 0] << 16) | (rgb[:, :, 1] << 8) | rgb[:, :, 2]
            ids = np.full(code.shape, -1, dtype=np.int64)
            for c in np.unique(code):
                ids[code == c] = lut.get(int(c), -1 if unknown_id is None else unknown_id)
            if (ids < 0).any():
                c = int(code[ids < 0][0])
                raise InputError(pair.mask, f"has colour {[c >> 16, (c >> 8) & 255, c & 255]} not in {palette_file}",
                                 "add it to the palette file")
            jobs.append((Path(out) / pair.mask.parent.name / pair.mask.name, ids.astype(np.uint8)))
    plan_files([dst for dst, _ in jobs], overwrite=overwrite)
    return [atomic_save_png(ids, dst) for dst, ids in jobs]
