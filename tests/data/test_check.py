"""`roadseg check` finds every problem in a folder seeded with many kinds of defect."""
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from roadseg.data.check import check_dataset, fix_palette
from roadseg.cli import main
from roadseg.classes import CARLA_COLORS

from ..conftest import save


def _bomb_png(path, width=100_000, height=100_000):
    """A tiny PNG whose header declares an enormous size."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))


def seed_defects(root):
    rgb, msk = root / "CameraRGB", root / "CameraMask"
    (msk / "000000.png").unlink()                                           # 1 image without mask
    (rgb / "000001.png").unlink()                                           # 2 mask without image
    (rgb / "notes.txt").write_text("x")                                     # 3 foreign file
    shutil.copy(rgb / "000002.png", rgb / "000002.jpg")                     # 4 same stem twice
    (rgb / "000003.png").write_bytes(b"GIF89a....")                         # 5 not a PNG
    data = (msk / "000004.png").read_bytes()
    (msk / "000004.png").write_bytes(data[: len(data) // 3])                # 6 truncated PNG
    (rgb / "000005.png").write_bytes(b"")                                   # 7 empty file
    save(msk / "000006.png", np.asarray(Image.open(msk / "000006.png"))[:50])  # 8 size mismatch
    ids = np.asarray(Image.open(msk / "000007.png"))[:, :, 0]
    save(msk / "000007.png", np.asarray(CARLA_COLORS, np.uint8)[ids])       # 9 colour-palette mask
    m = np.asarray(Image.open(msk / "000008.png")).copy()
    m[0, 0, 0] = 40
    save(msk / "000008.png", m)                                             # 10 id outside the table
    shutil.copy(rgb / "000010.png", rgb / "000009.png")                     # 11 duplicate frame
    _bomb_png(rgb / "000011.png")                                           # 12 decompression bomb
    save(msk / "000010.png", np.full((120, 160), 11, np.uint8), "L")         # 13 no labelled pixel
    return root


EXPECTED = {"image-without-mask": 1, "mask-without-image": 1, "foreign-file": 1, "duplicate-name": 1,
            "unreadable": 4, "size-mismatch": 1, "palette-mask": 1, "id-out-of-range": 1, "duplicate-frame": 1,
            "no-labels": 1}


def test_finds_every_defect(copy_carla):
    root = seed_defects(copy_carla())
    report = check_dataset(root, ignore_index=11)
    kinds = {}
    for f in report.findings:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    assert kinds == EXPECTED
    messages = "\n".join(f.message for f in report.findings)
    for needle in ["000000.png: has no mask", "000001.png: has no image", "notes.txt: is not a PNG or JPEG",
                   "000002.png: has the same name as 000002.jpg", "000003.png: is not a PNG", "000004.png: is corrupt or truncated",
                   "000005.png: is empty", "000006.png: is 160x50", "000007.png: looks like a colour map",
                   "000008.png: has class ids [40]", "000010.png: is the same frame as", "000011.png: declares",
                   "000010.png: has no labelled pixel"]:
        assert needle in messages, needle
    assert report.encodings["rgb-id"] >= 5 and report.encodings["palette"] == 1


def test_clean_dataset_and_exit_codes(carla_dir, copy_carla, tmp_path, capsys):
    assert main(["check", str(carla_dir)]) == 0
    out = capsys.readouterr().out
    assert "12 image/mask pairs" in out and "no problems found" in out and "Road" in out
    assert main(["check", str(seed_defects(copy_carla()))]) == 1
    assert "problems" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "missing")]) == 2


def test_training_refuses_and_names_the_count(copy_carla, tmp_path, capsys):
    root = seed_defects(copy_carla())
    assert main(["train", "--data", str(root), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "000002.png: has the same name" in err and "3 more problems" in err and "roadseg check" in err
    assert not (tmp_path / "r").exists()


def test_fix_palette(copy_carla, tmp_path):
    root = copy_carla()
    msk = root / "CameraMask"
    ids = np.asarray(Image.open(msk / "000003.png"))[:, :, 0].copy()
    save(msk / "000003.png", np.asarray(CARLA_COLORS, np.uint8)[ids])
    (tmp_path / "colours.json").write_text(json.dumps([list(c) for c in CARLA_COLORS]))
    written = fix_palette(root, tmp_path / "colours.json", tmp_path / "fixed")
    assert [p.name for p in written] == ["000003.png"]
    assert np.array_equal(np.asarray(Image.open(written[0])), ids)
    (tmp_path / "short.json").write_text(json.dumps([list(c) for c in CARLA_COLORS[:3]]))
    assert main(["check", str(root), "--fix-palette", str(tmp_path / "short.json"), "--out", str(tmp_path / "f2")]) == 2


def _generic_with_void(root: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        save(root / "images" / f"{i}.png", rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
        mask = rng.integers(0, 4, (32, 48)).astype(np.uint8)
        mask[:4] = 255  # void, as many labelling tools write it
        save(root / "masks" / f"{i}.png", mask)
    return root


def test_void_255_is_flagged_and_not_counted_as_a_class(tmp_path, capsys):
    """Issue 14, item 27."""
    data = _generic_with_void(tmp_path / "d")
    assert main(["check", str(data)]) == 1
    assert "--ignore-index 255" in capsys.readouterr().out
    args = ["train", "--data", str(data), "--epochs", "1", "--size", "32x48", "--base-filters", "4", "--depth", "3",
            "--batch-size", "2", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "r1")]) == 2
    err = capsys.readouterr().err
    assert "class id 255 stands far above the others (up to 3)" in err and not (tmp_path / "r1").exists()
    assert main([*args, "--out", str(tmp_path / "r2"), "--ignore-index", "255"]) == 0
    from roadseg.checkpoint import load_checkpoint
    assert len(load_checkpoint(tmp_path / "r2" / "best.pt")["classes"]["names"]) == 4


def test_jpeg_orientation_is_applied_and_check_explains_a_mask_at_the_stored_size(tmp_path, capsys):
    """Issue 14, item 28: a phone JPEG stored 48x32 with orientation 6 (rotate 90) is shown 32x48."""
    from roadseg.data.imageio import read_image
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:, :8] = 255  # a white band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(root / "images" / "0.jpg", exif=exif)
    image = read_image(root / "images" / "0.jpg")
    assert image.shape == (48, 32, 3) and image[:8].mean() > 200  # the band is now at the top
    save(root / "masks" / "0.png", np.zeros((32, 48), np.uint8))  # labelled on the stored pixels
    assert main(["check", str(root), "--num-classes", "2"]) == 1
    assert "only before the image's EXIF rotation (orientation 6)" in capsys.readouterr().out
