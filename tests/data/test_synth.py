"""Synthetic scenes: exact CARLA file format, determinism and variety."""
import numpy as np
from PIL import Image

from roadseg.data.synth import render_scene, write_dataset


def test_carla_file_format(carla_dir):
    rgb = Image.open(carla_dir / "CameraRGB" / "000000.png")
    mask = Image.open(carla_dir / "CameraMask" / "000000.png")
    assert rgb.mode == "RGB" and mask.mode == "RGBA"
    assert rgb.size == mask.size == (160, 120)
    m = np.asarray(mask)
    assert (m[:, :, 1] == 0).all() and (m[:, :, 2] == 0).all() and (m[:, :, 3] == 255).all()
    assert m[:, :, 0].max() <= 22


def test_default_size_is_carla(tmp_path):
    write_dataset(tmp_path, 1, seed=0)
    assert Image.open(tmp_path / "CameraMask" / "000000.png").size == (640, 480)


def test_deterministic_for_a_seed():
    a = render_scene(np.random.default_rng([5, 1]), (96, 128))
    b = render_scene(np.random.default_rng([5, 1]), (96, 128))
    c = render_scene(np.random.default_rng([6, 1]), (96, 128))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_scenes_are_varied():
    classes = set()
    for i in range(30):
        rgb, ids = render_scene(np.random.default_rng([0, i]), (240, 320))
        classes |= set(np.unique(ids).tolist())
    # sky, building, road, road line, sidewalk, vegetation, vehicle, pedestrian, pole, sign/light, fence
    assert {13, 1, 7, 6, 8, 9, 10, 4, 5, 2}.issubset(classes)
    assert len(classes) >= 15
