"""Importing the notebook's Keras U-Net from HDF5 laid out exactly as Keras 2 writes it
(model.save and save_weights), checked against an independent NumPy forward pass with Keras'
semantics (NHWC, 'same' padding, Conv2DTranspose scatter alignment)."""
import json
from collections import defaultdict

import h5py
import numpy as np
import pytest
import torch

from roadseg.checkpoint import build_model, load_checkpoint
from roadseg.cli import main
from roadseg.errors import InputError
from roadseg.inference.keras_import import import_keras


def notebook_layers(base=4, n_classes=23, in_ch=3, seed=0):
    """The notebook's unet_model layer sequence, with Keras 2 auto-names and random weights."""
    rng = np.random.default_rng(seed)
    counts = defaultdict(int)

    def name(kind):
        counts[kind] += 1
        return kind if counts[kind] == 1 else f"{kind}_{counts[kind] - 1}"

    def w(*shape):
        return rng.normal(0, 0.3, shape).astype(np.float32)

    layers = [("input_1", "InputLayer", [])]
    c = in_ch
    for i in range(5):
        f = base * 2**i
        for _ in range(2):
            layers.append((name("conv2d"), "Conv2D", [w(3, 3, c, f), w(f)]))
            c = f
        if i >= 3:
            layers.append((name("dropout"), "Dropout", []))
        if i < 4:
            layers.append((name("max_pooling2d"), "MaxPooling2D", []))
    for i in reversed(range(4)):
        f = base * 2**i
        layers.append((name("conv2d_transpose"), "Conv2DTranspose", [w(3, 3, f, c), w(f)]))
        layers.append((name("concatenate"), "Concatenate", []))
        layers.append((name("conv2d"), "Conv2D", [w(3, 3, 2 * f, f), w(f)]))
        layers.append((name("conv2d"), "Conv2D", [w(3, 3, f, f), w(f)]))
        c = f
    layers.append((name("conv2d"), "Conv2D", [w(3, 3, base, base), w(base)]))
    layers.append((name("conv2d"), "Conv2D", [w(1, 1, base, n_classes), w(n_classes)]))
    return layers


def write_keras_h5(path, layers, full_model=True):
    """HDF5 as Keras 2 writes it: model.save (model_config + model_weights/) or save_weights (root)."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.9.0"
        f.attrs["backend"] = b"tensorflow"
        root = f
        if full_model:
            config = {"class_name": "Functional", "config": {"name": "model", "layers": [
                {"class_name": cls, "config": {"name": n}, "name": n, "inbound_nodes": []} for n, cls, _ in layers]}}
            f.attrs["model_config"] = json.dumps(config).encode()
            root = f.create_group("model_weights")
            root.attrs["keras_version"] = b"2.9.0"
            root.attrs["backend"] = b"tensorflow"
        root.attrs["layer_names"] = np.array([n.encode() for n, _, _ in layers])
        for n, _, weights in layers:
            g = root.create_group(n)
            names = [f"{n}/kernel:0", f"{n}/bias:0"][: len(weights)]
            g.attrs["weight_names"] = np.array([x.encode() for x in names])
            for wn, value in zip(names, weights):
                g.create_dataset(wn, data=value)


def keras_forward(x, layers):
    """NumPy forward pass of the notebook's network with Keras semantics (x: NHWC)."""
    def conv(x, k, b):
        p = k.shape[0] // 2
        xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        h, w = x.shape[1:3]
        return sum(xp[:, i:i + h, j:j + w] @ k[i, j] for i in range(k.shape[0]) for j in range(k.shape[1])) + b

    def conv_t(x, k, b):  # Keras Conv2DTranspose(3, strides=2, padding="same"): out[2i + di] += x[i] k[di]
        n, h, w, _ = x.shape
        out = np.zeros((n, 2 * h + 1, 2 * w + 1, k.shape[2]), np.float64)
        for di in range(3):
            for dj in range(3):
                out[:, di:di + 2 * h:2, dj:dj + 2 * w:2] += x @ k[di, dj].T
        return out[:, :2 * h, :2 * w] + b

    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    convs = iter([w for _, cls, w in layers if cls == "Conv2D"])
    ups = iter([w for _, cls, w in layers if cls == "Conv2DTranspose"])
    skips = []
    for i in range(5):
        x = relu(conv(relu(conv(x, *next(convs))), *next(convs)))
        if i < 4:
            skips.append(x)
            n, h, w, c = x.shape
            x = x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    for skip in reversed(skips):
        x = np.concatenate([conv_t(x, *next(ups)), skip], axis=3)
        x = relu(conv(relu(conv(x, *next(convs))), *next(convs)))
    x = relu(conv(x, *next(convs)))
    return conv(x, *next(convs))


@pytest.mark.parametrize("full_model", [True, False])
def test_imported_logits_match_keras(tmp_path, full_model):
    layers = notebook_layers()
    write_keras_h5(tmp_path / "unet.h5", layers, full_model)
    assert main(["import-keras", str(tmp_path / "unet.h5"), str(tmp_path / "unet.pt")]) == 0
    model = build_model(load_checkpoint(tmp_path / "unet.pt"))
    x = np.random.default_rng(1).random((2, 32, 48, 3)).astype(np.float32)
    expected = keras_forward(x.astype(np.float64), layers)
    with torch.no_grad():
        got = model(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert np.abs(got - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())
    assert np.array_equal(got.argmax(-1), expected.argmax(-1))


def test_full_size_notebook_file_has_notebook_parameter_count(tmp_path):
    write_keras_h5(tmp_path / "nb.h5", notebook_layers(base=32))
    ckpt = import_keras(tmp_path / "nb.h5")
    assert ckpt["model"]["parameters"] == 8_640_471
    assert ckpt["classes"]["names"][7] == "Road" and ckpt["input"]["size"] == [96, 128]


def test_wrong_files(tmp_path):
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(InputError, match="not an HDF5 file"):
        import_keras(tmp_path / "x.h5")
    layers = notebook_layers()
    layers[2] = (layers[2][0], "Conv2D", [np.zeros((3, 3, 7, 4), np.float32), np.zeros(4, np.float32)])
    write_keras_h5(tmp_path / "bad.h5", layers)
    with pytest.raises(InputError, match="expected the notebook's"):
        import_keras(tmp_path / "bad.h5")
