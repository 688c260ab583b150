"""Property-based tests: random bytes and malformed PNGs give a clean InputError, never a crash."""
import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from roadseg.checkpoint import load_checkpoint
from roadseg.errors import InputError
from roadseg.data.imageio import PNG_SIGNATURE, read_image, read_mask

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _png(mode="RGB", size=(12, 9)):
    rng = np.random.default_rng(0)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 23, shape, dtype=np.uint8)).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


VALID = {"RGB": _png("RGB"), "L": _png("L"), "RGBA": _png("RGBA"), "P": _png("P")}


def _only_clean_errors(path):
    for reader in (read_image, read_mask):
        try:
            out = reader(path)
        except InputError as e:
            assert str(path) in str(e) and "\n" not in str(e)
        else:
            assert out.dtype == np.uint8


@SETTINGS
@given(data=st.binary(max_size=2048), with_signature=st.booleans())
def test_random_bytes(tmp_path, data, with_signature):
    path = tmp_path / "f.png"
    path.write_bytes((PNG_SIGNATURE if with_signature else b"") + data)
    _only_clean_errors(path)


@SETTINGS
@given(mode=st.sampled_from(sorted(VALID)), cuts=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)),
                                                         max_size=6),
       truncate=st.integers(0, 400))
def test_mutated_pngs(tmp_path, mode, cuts, truncate):
    data = bytearray(VALID[mode])
    for pos, value in cuts:
        data[pos % len(data)] = value
    if truncate:
        data = data[: max(len(data) - truncate, 0)]
    path = tmp_path / "m.png"
    path.write_bytes(bytes(data))
    _only_clean_errors(path)


@SETTINGS
@given(data=st.binary(max_size=4096))
def test_random_checkpoint_bytes(tmp_path, data):
    path = tmp_path / "c.pt"
    path.write_bytes(data)
    try:
        load_checkpoint(path)
    except InputError as e:
        assert "c.pt" in str(e)
