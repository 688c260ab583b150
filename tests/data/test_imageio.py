"""Decoding images and masks of every supported encoding, and refusing broken files."""
import numpy as np
import pytest
from PIL import Image

from roadseg.data import imageio
from roadseg.errors import InputError
from roadseg.data.imageio import atomic_save_png, read_image, read_mask

from ..conftest import save

IDS = np.array([[0, 7, 13], [22, 5, 1]], dtype=np.uint8)


def test_mask_rgba_id_in_channel_0(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[:, :, 0], rgba[:, :, 3] = IDS, 255
    assert np.array_equal(read_mask(save(tmp_path / "m.png", rgba)), IDS)


def test_mask_rgb_takes_max_over_channels(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[:, :, 0] = IDS
    assert np.array_equal(read_mask(save(tmp_path / "m.png", rgb)), IDS)


def test_mask_index_and_palette(tmp_path):
    assert np.array_equal(read_mask(save(tmp_path / "l.png", IDS, "L")), IDS)
    p = Image.fromarray(IDS, "L").convert("P")
    p.save(tmp_path / "p.png")
    assert np.array_equal(read_mask(tmp_path / "p.png"), IDS)


def test_mask_16bit(tmp_path):
    Image.fromarray(IDS.astype(np.uint16)).save(tmp_path / "m16.png")
    assert np.array_equal(read_mask(tmp_path / "m16.png"), IDS)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_image_modes_become_rgb_uint8(tmp_path, mode):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert(mode).save(tmp_path / "i.png")
    out = read_image(tmp_path / "i.png")
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8


def test_image_16bit_grey_scaled(tmp_path):
    grey = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    assert out.shape == (2, 2, 3)
    assert out[0, 1, 0] == 255 and out[0, 0, 0] == 0 and out[1, 0, 0] == 128


def test_jpeg_image_accepted_but_not_as_mask(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.jpg")
    assert read_image(tmp_path / "a.jpg").shape == (4, 4, 3)
    with pytest.raises(InputError, match="not a PNG"):
        read_mask(tmp_path / "a.jpg")


def test_not_a_png(tmp_path):
    (tmp_path / "x.png").write_text("hello")
    with pytest.raises(InputError, match=r"x\.png: is not a PNG"):
        read_image(tmp_path / "x.png")


def test_truncated_png(tmp_path):
    path = save(tmp_path / "t.png", np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match="corrupt or truncated"):
        read_image(path)


def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(InputError, match="is empty"):
        read_mask(tmp_path / "e.png")


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    save(tmp_path / "big.png", np.zeros((100, 100), np.uint8), "L")
    monkeypatch.setattr(imageio, "MAX_PIXELS", 5000)
    with pytest.raises(InputError, match="more than the limit"):
        read_image(tmp_path / "big.png")


def test_atomic_save_leaves_no_temp(tmp_path):
    atomic_save_png(IDS, tmp_path / "o.png")
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), IDS)
