"""The Winograd CPU network and its native kernels: same logits as the PyTorch modules within 1e-4,
and for training the same gradients."""
import copy
import csv
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from roadseg.accel import kernels, training as wtraining, winograd
from roadseg.cli import main
from roadseg.errors import InputError, note_once
from roadseg.nets import UNet
from roadseg.inference.predictor import Predictor
from roadseg.training import train
from roadseg.accel.training import WinogradConv2d, use_for_training
from roadseg.accel.winograd import WinogradUNet, phase_weights, winograd_weight

from ..conftest import tiny_config

pytestmark = pytest.mark.skipif(os.environ.get("ROADSEG_KERNELS") == "0",
                                reason="the kernels are off (ROADSEG_KERNELS=0): the suite checks the fallback")


@pytest.fixture(autouse=True)
def _fresh_library():
    """Tests that change the environment rebuild the library; the others find it cached again."""
    kernels.library.cache_clear()
    yield
    kernels.library.cache_clear()


def _close(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4 * max(1.0, expected.abs().max().item())


def test_kernels_build_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ROADSEG_CACHE_DIR", str(tmp_path))
    assert kernels.library() is not None, kernels.why_unavailable()
    built = list((tmp_path / "kernels").glob("kernels-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    kernels.library.cache_clear()
    assert kernels.library() is not None and built[0].stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert [p.name for p in (tmp_path / "kernels").iterdir()] == [built[0].name]  # no half-written files
    assert (tmp_path / "kernels").stat().st_mode & 0o777 == 0o700  # private to the user


@pytest.mark.parametrize("size", [(8, 12), (10, 14), (3, 5)])
def test_one_convolution_over_two_sources(size):
    """winograd_input/output around the 36-group product equal conv2d + ReLU over the concatenation,
    including sizes that are not multiples of the 4x4 tile, and an upsampled source given as phases."""
    torch.manual_seed(0)
    n, (h, w) = 3, size
    low = torch.randn(n, 48, h, w).to(memory_format=torch.channels_last)
    up_weight, up_bias = torch.randn(48, 32, 3, 3) * 0.1, torch.randn(32)
    skip = torch.randn(n, 16, 2 * h, 2 * w).to(memory_format=torch.channels_last)
    weight, bias = torch.randn(64, 48, 3, 3) * 0.1, torch.randn(64)
    up = F.conv_transpose2d(low, up_weight, up_bias, stride=2)[:, :, :2 * h, :2 * w]
    expected = torch.relu(F.conv2d(torch.cat([up, skip], 1), weight, bias, padding=1))
    ee, eo, oe, oo = phase_weights(up_weight)
    phases = [F.conv2d(low, ee, up_bias, padding=1)[:, :, :h, :w], F.conv2d(low, eo, up_bias, padding=(1, 0))[:, :, :h],
              F.conv2d(low, oe, up_bias, padding=(0, 1))[:, :, :, :w], F.conv2d(low, oo, up_bias)]
    srcs = [kernels.phased_source(phases), kernels.source(skip)]
    v = kernels.winograd_input(srcs, n, 2 * h, 2 * w)
    m = F.conv2d(v, winograd_weight(weight), groups=36)
    _close(kernels.winograd_output(m, bias, True, n, 2 * h, 2 * w), expected)
    _close(kernels.concat_channels(srcs, n, 2 * h, 2 * w), torch.cat([up, skip], 1))


def test_kernels_refuse_channel_counts_they_cannot_take():
    x = torch.zeros(1, 8, 4, 4).to(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="multiples of 16"):
        kernels.winograd_input([kernels.source(x)], 1, 4, 4)
    with pytest.raises(ValueError, match="multiples of 16"):
        kernels.winograd_output_grad(x)


def _randomise_batch_norm(model: UNet) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


@pytest.mark.parametrize("settings, size", [
    ({}, (32, 48)),                                   # the notebook's network
    ({"batch_norm": True}, (48, 32)),                 # batch norm folded into the convolutions
    ({"base_filters": 8}, (32, 32)),                  # too narrow for Winograd: fused direct convs only
    ({"in_channels": 1, "depth": 4, "base_filters": 16}, (40, 56)),
])
def test_logits_match_the_pytorch_modules(settings, size):
    torch.manual_seed(1)
    model = UNet(**settings).eval()
    _randomise_batch_norm(model)
    x = torch.rand(2, model.settings["in_channels"], *size)
    with torch.no_grad():
        expected = model(x)
    _close(WinogradUNet(model)(x), expected)


def test_logits_match_without_onednn_fused_ops(monkeypatch):
    """Where PyTorch lacks the oneDNN conv+ReLU and weight-reorder ops, plain conv2d calls stand in."""
    monkeypatch.setattr(winograd, "_MKLDNN", False)
    torch.manual_seed(2)
    model = UNet().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    _close(WinogradUNet(model)(x), expected)


def test_large_batches_run_in_chunks_with_the_same_logits(monkeypatch):
    torch.manual_seed(4)
    model = UNet(depth=3).eval()
    x = torch.rand(5, 3, 16, 32)
    whole = WinogradUNet(model)(x)
    monkeypatch.setattr(winograd, "MAX_CHUNK_PIXELS", 2 * 16 * 32)  # chunks of 2, 2 and 1 frames
    sizes = []
    forward = WinogradUNet._forward
    monkeypatch.setattr(WinogradUNet, "_forward", lambda self, x: sizes.append(len(x)) or forward(self, x))
    _close(WinogradUNet(model)(x), whole)
    assert sizes == [2, 2, 1]


def test_sizes_the_network_cannot_take_are_refused():
    fast = WinogradUNet(UNet(depth=3).eval())
    with pytest.raises(InputError, match="not divisible by 4"):
        fast(torch.rand(1, 3, 16, 18))


def test_shipped_model_predicts_the_same_with_and_without(tmp_path):
    fast = Predictor.from_checkpoint("camvid-unet", "cpu")
    plain = Predictor.from_checkpoint("camvid-unet", "cpu", winograd=False)
    assert fast.engine.name == "winograd" and plain.engine.name == "torch"
    frames = np.random.default_rng(0).integers(0, 256, (2, *fast.size, 3), dtype=np.uint8)
    a, b = fast.logits(frames), plain.logits(frames)
    _close(a, b)
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.999


def test_without_a_compiler_predictor_falls_back(monkeypatch, capsys, trained):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    frame = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    predictor = Predictor.from_checkpoint(trained / "best.pt", "cpu")
    assert predictor.engine.name == "torch"  # the fallback, said in one line
    assert "/nonexistent/c++" in capsys.readouterr().err
    monkeypatch.delenv("CXX")
    kernels.library.cache_clear()
    assert (predictor.predict(frame) == Predictor.from_checkpoint(trained / "best.pt", "cpu").predict(frame)).all()


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    """A checkpoint wide enough (64 filters) that its convolutions run as Winograd."""
    from roadseg.checkpoint import input_description, make_checkpoint, save_checkpoint
    from roadseg.classes import class_table
    torch.manual_seed(5)
    net = UNet(num_classes=23, base_filters=64, depth=2, batch_norm=True).eval()
    _randomise_batch_norm(net)
    path = tmp_path_factory.mktemp("wide") / "wide.pt"
    save_checkpoint(make_checkpoint(net, class_table("carla"), input_description((32, 48), "bilinear", 2)), path)
    return path


def test_cli_no_winograd_writes_the_same_masks(wide_model, carla_dir, tmp_path, monkeypatch):
    frames = sorted((carla_dir / "CameraRGB").glob("*.png"))[:3]
    calls = []
    transform = kernels.winograd_input
    monkeypatch.setattr(kernels, "winograd_input", lambda *a: calls.append(1) or transform(*a))
    for name, extra in (("fast", []), ("plain", ["--no-winograd"])):
        calls.clear()
        assert main(["predict", *map(str, frames), "--model", str(wide_model), "--out",
                     str(tmp_path / name), *extra]) == 0
        assert bool(calls) == (name == "fast")  # Winograd convolutions ran, or none did
    written = sorted((tmp_path / "fast").iterdir())
    assert len(written) >= len(frames)
    for f in written:  # equal up to a pixel whose two best logits tie within float rounding
        a, b = np.asarray(Image.open(f)), np.asarray(Image.open(tmp_path / "plain" / f.name))
        assert a.shape == b.shape and (a == b).mean() > 0.999


def test_a_damaged_cached_library_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("ROADSEG_CACHE_DIR", str(tmp_path))
    path = kernels.library_path()  # never loaded in this process: overwriting a loaded library crashes it
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a shared library")
    assert kernels.library() is not None, kernels.why_unavailable()
    assert path.read_bytes()[:4] == b"\x7fELF"


@pytest.mark.parametrize("fault", ["failing compiler", "missing source", "loader error", "foreign cache folder",
                                   "foreign library"])
def test_any_failure_of_the_kernels_falls_back_in_one_line(fault, tmp_path, monkeypatch, wide_model, capsys):
    monkeypatch.setenv("ROADSEG_CACHE_DIR", str(tmp_path / "cache"))
    if fault == "failing compiler":
        monkeypatch.setenv("CXX", "false")  # exists, exits 1
    elif fault == "missing source":
        monkeypatch.setattr(kernels, "SOURCES", (tmp_path / "nowhere" / "winograd.cpp",))
    elif fault == "loader error":
        monkeypatch.setattr(kernels.ctypes, "CDLL", lambda *a, **k: (_ for _ in ()).throw(ValueError("bad path")))
    elif fault == "foreign cache folder":
        (tmp_path / "cache" / "kernels").mkdir(parents=True)
        (tmp_path / "cache" / "kernels").chmod(0o777)
    else:
        path = kernels.library_path()
        path.parent.mkdir(parents=True, mode=0o700)
        path.write_bytes(b"\x7fELF planted by someone else")
        if os.getuid() != 0:
            pytest.skip("changing a file's owner needs root")
        os.chown(path, 12345, 12345)
    winograd._self_check.cache_clear()
    note_once.cache_clear()
    assert kernels.library() is None and kernels.why_unavailable()
    frame = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    predictor = Predictor.from_checkpoint(wide_model, "cpu")
    assert predictor.predict(frame).shape == (40, 60) and predictor.engine.name == "torch"
    err = capsys.readouterr().err
    assert "Winograd CPU kernels not used" in err and "Traceback" not in err


def test_a_library_that_computes_wrong_logits_is_not_used(monkeypatch, trained):
    """The self-check compares the kernels with PyTorch on a small network before any use."""
    monkeypatch.setattr(winograd, "_G", winograd._G * 1.01)  # a wrong filter transform (inference only)
    winograd._self_check.cache_clear()
    try:
        assert "self-check failed: logits differ" in winograd.unavailable_reason()
        assert Predictor.from_checkpoint(trained / "best.pt", "cpu").engine.name == "torch"
    finally:
        winograd._self_check.cache_clear()


@pytest.mark.parametrize("size, bias", [((12, 20), True), ((7, 9), False)])
def test_training_conv_gradients_match_conv2d(size, bias, monkeypatch):
    monkeypatch.setattr(wtraining, "MIN_TRAINING_TILES", 0)  # small inputs, Winograd all the same
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(64, 80, 3, padding=1, bias=bias)
    ref = copy.deepcopy(conv)
    assert use_for_training(conv) == 1 and isinstance(conv, WinogradConv2d)
    x = torch.randn(3, 64, *size).to(memory_format=torch.channels_last).requires_grad_()
    go = torch.randn(3, 80, *size)
    params = lambda m: [x, m.weight] + ([m.bias] if bias else [])  # noqa: E731
    expected = torch.autograd.grad((ref(x) * go).sum(), params(ref))
    got = torch.autograd.grad((conv(x) * go).sum(), params(conv))
    for g, e in zip(got, expected):
        _close(g, e)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision steps use PyTorch's conv
        assert torch.equal(conv(x), ref(x))


def test_use_for_training_keeps_parameters_and_state_dict():
    model = UNet()
    keys, params = list(model.state_dict()), [id(p) for p in model.parameters()]
    assert use_for_training(model) == 13  # the notebook net's 3x3 convs with >= 64 channels in and out
    assert list(model.state_dict()) == keys and [id(p) for p in model.parameters()] == params
    assert not isinstance(model.encoder[0][0], WinogradConv2d)  # 3 -> 32 stays a direct conv


def test_fp32_cpu_training_runs_winograd_and_learns_the_same(tmp_path, carla_dir, monkeypatch):
    monkeypatch.setattr(wtraining, "MIN_TRAINING_TILES", 0)
    calls = []
    apply = wtraining._WinogradConv.apply
    monkeypatch.setattr(wtraining._WinogradConv, "apply", staticmethod(lambda *a: calls.append(1) or apply(*a)))
    settings = dict(epochs=2, base_filters=16, depth=3, amp=False)  # 64 channels at the deepest level
    fast = train(tiny_config(carla_dir, tmp_path / "fast", winograd=True, **settings))
    assert calls
    calls.clear()
    plain = train(tiny_config(carla_dir, tmp_path / "plain", winograd=False, **settings))
    assert not calls
    rows = [list(csv.DictReader(open(run / "metrics.csv"))) for run in (fast, plain)]
    for a, b in zip(*rows):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-3)


def test_training_convs_with_few_tiles_use_pytorch(monkeypatch):
    """Below MIN_TRAINING_TILES output tiles the per-step weight transforms cost more than they save."""
    calls = []
    apply = wtraining._WinogradConv.apply
    monkeypatch.setattr(wtraining._WinogradConv, "apply", staticmethod(lambda *a: calls.append(1) or apply(*a)))
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    use_for_training(conv)
    tiles_per_image = 4 * 4  # 16x16
    conv(torch.rand(wtraining.MIN_TRAINING_TILES // tiles_per_image - 1, 64, 16, 16))
    assert not calls
    conv(torch.rand(wtraining.MIN_TRAINING_TILES // tiles_per_image, 64, 16, 16))
    assert calls
