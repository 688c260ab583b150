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


def test_hood_is_vehicles_across_the_bottom_and_off_leaves_frames_as_they_were():
    rng = lambda: np.random.default_rng([2, 3])  # noqa: E731
    plain, hooded = render_scene(rng(), (120, 160)), render_scene(rng(), (120, 160), hood=1.0)
    assert np.array_equal(render_scene(rng(), (120, 160), hood=0.0)[1], plain[1])
    assert (hooded[1][-2:] == 10).all() and not (plain[1][-2:] == 10).all()
    assert (hooded[1][:60] == plain[1][:60]).all()  # the top half is the same scene


def test_carla08_masks_hold_only_its_13_ids_with_the_sky_in_none(tmp_path, capsys):
    from roadseg.cli import main
    assert main(["synth", str(tmp_path / "a"), "--count", "2", "--size", "96x128", "--seed", "4"]) == 0
    assert main(["synth", str(tmp_path / "b"), "--count", "2", "--size", "96x128", "--seed", "4",
                 "--classes", "carla08"]) == 0
    for name in ("000000.png", "000001.png"):
        full = np.asarray(Image.open(tmp_path / "a" / "CameraMask" / name))[:, :, 0]
        old = np.asarray(Image.open(tmp_path / "b" / "CameraMask" / name))[:, :, 0]
        assert old.max() <= 12 and (old[full == 13] == 0).all() and (old[full < 13] == full[full < 13]).all()
    assert main(["check", str(tmp_path / "b")]) == 1  # a problem until --classes carla08 says so
    assert "--classes carla08" in capsys.readouterr().out  # check recognises CARLA 0.8 masks
