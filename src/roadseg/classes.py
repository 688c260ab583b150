"""Class tables (names, colours, ignore id) for the datasets roadseg knows.

Usage: ``table = class_table("carla"); table.names[7] == "Road"``
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

CARLA_NAMES = [
    "Unlabeled", "Building", "Fence", "Other", "Pedestrian", "Pole", "RoadLine", "Road",
    "SideWalk", "Vegetation", "Vehicles", "Wall", "TrafficSign", "Sky", "Ground", "Bridge",
    "RailTrack", "GuardRail", "TrafficLight", "Static", "Dynamic", "Water", "Terrain",
]
# CARLA's own CityScapesPalette colours for these ids.
CARLA_COLORS = [
    (0, 0, 0), (70, 70, 70), (100, 40, 40), (55, 90, 80), (220, 20, 60), (153, 153, 153),
    (157, 234, 50), (128, 64, 128), (244, 35, 232), (107, 142, 35), (0, 0, 142),
    (102, 102, 156), (220, 220, 0), (70, 130, 180), (81, 0, 81), (150, 100, 100),
    (230, 150, 140), (180, 165, 180), (250, 170, 30), (110, 190, 160), (170, 120, 50),
    (45, 60, 150), (145, 170, 100),
]
CAMVID_NAMES = [
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
]
CAMVID_COLORS = [
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
]
IGNORE_COLOR = (0, 0, 0)
# Cityscapes: the 19 train ids' names and colours, and the label id of each (the others are ignored).
CITYSCAPES_NAMES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                    "motorcycle", "bicycle"]
CITYSCAPES_COLORS = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
                     (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
                     (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
                     (0, 80, 100), (0, 0, 230), (119, 11, 32)]
CITYSCAPES_LABEL_IDS = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
# CARLA 0.8: ids 0..12 with CARLA's meanings, and id 0 ("None") also holds the sky.
CARLA08_NAMES = ["None"] + CARLA_NAMES[1:13]
TABLE_NAMES = ("carla", "carla08", "camvid", "cityscapes", "generic")
# Classes that mean the same thing under different names in the known tables (for --init and maps).
SAME_CLASS = [{"Sky"}, {"Building"}, {"Pole"}, {"Road"}, {"Pavement", "SideWalk"}, {"Tree", "Vegetation"},
              {"SignSymbol", "TrafficSign"}, {"Fence"}, {"Car", "Vehicles"}, {"Pedestrian"}, {"Wall"},
              {"RoadLine"}, {"Unlabeled", "None"}]


def id_table(name: str) -> np.ndarray:
    """A 256-entry lookup table a layout's mask ids go through on load ('cityscapes': label ids to the
    19 train ids, every other id to 255, ignored)."""
    if name != "cityscapes":
        raise ValueError(f"no id table named {name!r}")
    lut = np.full(256, 255, dtype=np.uint8)
    lut[CITYSCAPES_LABEL_IDS] = np.arange(len(CITYSCAPES_LABEL_IDS), dtype=np.uint8)
    return lut


@dataclass(frozen=True)
class ClassTable:
    """Names and colours of the classes a model predicts, plus the id that is ignored (or None)."""

    names: list[str]
    colors: list[tuple[int, int, int]]
    ignore_index: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def class_id(self, key: object) -> int | None:
        """The id of the class `key` names: a name of this table, or an id (an int or a string of digits)
        below num_classes; None if it names none of this table's classes."""
        if isinstance(key, int) and not isinstance(key, bool):
            return key if 0 <= key < self.num_classes else None
        if key in self.names:
            return self.names.index(key)
        if isinstance(key, str) and key.isdigit() and int(key) < self.num_classes:
            return int(key)
        return None

    def palette(self) -> np.ndarray:
        """A 256x3 uint8 lookup table from id to colour (ids past the table are black)."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[: self.num_classes] = np.asarray(self.colors, dtype=np.uint8)
        return lut

    def to_dict(self) -> dict:
        return {"names": list(self.names), "colors": [list(c) for c in self.colors],
                "ignore_index": self.ignore_index}

    @classmethod
    def from_dict(cls, d: dict) -> "ClassTable":
        return cls(list(d["names"]), [tuple(c) for c in d["colors"]], d.get("ignore_index"))


def generic_table(num_classes: int, ignore_index: int | None = None) -> ClassTable:
    """Names class_0.. and distinct colours for a dataset without a known table."""
    rng = np.random.default_rng(12345)
    colors = [tuple(int(v) for v in rng.integers(30, 256, 3)) for _ in range(num_classes)]
    return ClassTable([f"class_{i}" for i in range(num_classes)], colors, ignore_index)


def related(source: list[str], target: list[str]) -> dict[int, int]:
    """{target id: source id} for the classes of `target` that `source` also has (same name, or names
    of one class in SAME_CLASS)."""
    found = {}
    for t, name in enumerate(target):
        group = next((g for g in SAME_CLASS if name in g), {name})
        match = [i for i, other in enumerate(source) if other in group]
        if match:
            found[t] = match[0]
    return found


def class_table(fmt: str, num_classes: int | None = None, ignore_index: int | None = None) -> ClassTable:
    """The class table for a dataset format or table name: 'carla' (23), 'carla08' (CARLA 0.8's 13 ids,
    sky at 0), 'camvid' (11 + unlabelled 11, ignored) or 'generic' (num_classes)."""
    if fmt == "carla08":
        return ClassTable(list(CARLA08_NAMES), CARLA_COLORS[:13], ignore_index)
    if fmt == "cityscapes":
        return ClassTable(list(CITYSCAPES_NAMES), list(CITYSCAPES_COLORS), 255 if ignore_index is None else ignore_index)
    if fmt == "carla":
        n = num_classes or len(CARLA_NAMES)
        if n > len(CARLA_NAMES):
            return generic_table(n, ignore_index)
        return ClassTable(CARLA_NAMES[:n], CARLA_COLORS[:n], ignore_index)
    if fmt == "camvid":
        return ClassTable(list(CAMVID_NAMES), list(CAMVID_COLORS),
                          len(CAMVID_NAMES) if ignore_index is None else ignore_index)
    if num_classes is None:
        raise ValueError("a generic dataset needs num_classes")
    return generic_table(num_classes, ignore_index)


def resolve_ignore(value: int | str | None, fmt: str) -> int | None:
    """'auto' -> 11 for CamVid, 255 for Cityscapes, none otherwise; 'none'/None -> None; a number -> that id."""
    if value == "auto":
        return {"camvid": 11, "cityscapes": 255}.get(fmt)
    if value is None or str(value).lower() in ("none", "null", ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise InputError(None, f"ignore_index '{value}' is not a number", "use an id, none or auto") from None


# Built-in class maps between the known tables (source table, target table).
BUILTIN_MAPS = {"camvid-to-carla": ("camvid", "carla"), "carla-to-camvid": ("carla", "camvid"),
                "carla-to-carla08": ("carla", "carla08")}
VOID = 255  # where a map leaves ids unmapped and the target table has no ignore id


def load_class_map(spec: str, source: ClassTable, target: ClassTable) -> tuple[np.ndarray, int]:
    """A 256-entry lookup table from source ids to target ids, and the id unmapped pixels get (the
    target's ignore id, else 255). `spec` is a built-in name (BUILTIN_MAPS) or a YAML/JSON file of
    {source id or name: target id or name}; the source's ignore id stays ignored."""
    ignore = target.ignore_index if target.ignore_index is not None else VOID
    lut = np.full(256, ignore, dtype=np.uint8)
    if spec in BUILTIN_MAPS:
        pairs = {s: t for t, s in related(source.names, target.names).items()}
        if BUILTIN_MAPS[spec] == ("carla", "carla08"):
            pairs = {i: i for i in range(13)} | {CARLA_NAMES.index("Sky"): 0}  # CARLA 0.8 puts the sky in None
    else:
        pairs = _read_map(spec, source, target)
    for s, t in pairs.items():
        lut[s] = t
    return lut, ignore


def _read_map(path_text: str, source: ClassTable, target: ClassTable) -> dict[int, int]:
    import json
    from pathlib import Path

    import yaml
    path = Path(path_text)
    if not path.is_file():
        raise InputError(path, "is neither a class-map file nor a built-in map",
                         f"built-in maps: {', '.join(BUILTIN_MAPS)}; or a YAML/JSON file of source: target")
    try:
        values = yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") else json.loads(path.read_text())
    except (ValueError, yaml.YAMLError) as e:
        raise InputError(path, f"is not valid YAML/JSON ({str(e).splitlines()[0]})", "fix the file") from None
    if not isinstance(values, dict):
        raise InputError(path, "must map source ids or names to target ids or names", "e.g. {Car: Vehicles, 3: 7}")

    def index(table: ClassTable, key: object, side: str) -> int:
        found = table.class_id(key)
        if found is None:
            raise InputError(path, f"names {side} class {key!r}, which its table does not have",
                             f"use an id or one of {', '.join(table.names)}")
        return found
    return {index(source, k, "source"): index(target, v, "target") for k, v in values.items()}


def mapped_table(spec: str, data_format: str, classes: str | None) -> tuple[str, np.ndarray, int]:
    """For --class-map: the target table's name (--classes, else the built-in map's target), the
    lookup table from the data's ids, and the id unmapped pixels get (ignored)."""
    target = classes or BUILTIN_MAPS.get(spec, (None, None))[1]
    if target is None or target == "generic" or data_format == "generic":
        raise InputError(None, f"--class-map {spec} needs the tables on both sides",
                         "name the target with --classes (carla, carla08 or camvid); the data must be CARLA or CamVid")
    lut, ignore = load_class_map(spec, class_table(data_format), class_table(target))
    return target, lut, ignore
