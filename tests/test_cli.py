"""Bad input: one line naming the file and the problem, exit status 2, no traceback, nothing written."""
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from roadseg.cli import main

from .conftest import save


def _break(kind, root):
    rgb, msk = root / "CameraRGB", root / "CameraMask"
    if kind == "missing folder":
        return root / "does-not-exist", "dataset folder not found"
    if kind == "image without mask":
        (msk / "000004.png").unlink()
        return root, "000004.png: has no mask"
    if kind == "mask without image":
        (rgb / "000005.png").unlink()
        return root, "000005.png: has no image"
    if kind == "not a png":
        (rgb / "000006.png").write_bytes(b"GIF89a not really")
        return root, "000006.png: is not a PNG"
    if kind == "not an image file":
        (rgb / "notes.txt").write_text("hello")
        return root, "notes.txt: is not a PNG or JPEG file"
    if kind == "truncated png":
        data = (msk / "000007.png").read_bytes()
        (msk / "000007.png").write_bytes(data[: len(data) // 3])
        return root, "000007.png: is corrupt or truncated"
    if kind == "size mismatch":
        mask = np.asarray(Image.open(msk / "000008.png"))[:60]
        save(msk / "000008.png", mask)
        return root, "000008.png: is 160x60 but its image"
    if kind == "id out of range":
        mask = np.asarray(Image.open(msk / "000009.png")).copy()
        mask[5, 5, 0] = 30
        save(msk / "000009.png", mask)
        return root, "000009.png: has class id 30, outside 0..22"
    if kind == "empty dataset":
        for f in list(rgb.iterdir()) + list(msk.iterdir()):
            f.unlink()
        return root, "holds no image/mask pairs"
    raise ValueError(kind)


KINDS = ["missing folder", "image without mask", "mask without image", "not a png", "not an image file",
         "truncated png", "size mismatch", "id out of range", "empty dataset"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_dataset_for_train(kind, copy_carla, tmp_path, capsys):
    data, expected = _break(kind, copy_carla())
    out = tmp_path / "run"
    code = main(["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--size", "32x48",
                 "--base-filters", "4", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_size_not_divisible(carla_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(carla_dir), "--out", str(out), "--size", "100x128"]) == 2
    assert "not divisible by 16" in capsys.readouterr().err
    assert not out.exists()


def test_bad_dataset_for_evaluate_and_predict(trained, copy_carla, tmp_path, capsys):
    data, expected = _break("truncated png", copy_carla())
    assert main(["evaluate", "--model", str(trained / "best.pt"), "--data", str(data), "--split", "all"]) == 2
    assert expected in capsys.readouterr().err
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(trained / "best.pt"), "--out", str(out),
                 str(data / "CameraRGB"), str(tmp_path / "nope.png")]) == 2
    assert "nope.png: file not found" in capsys.readouterr().err
    (data / "CameraRGB" / "000002.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    assert main(["predict", "--model", str(trained / "best.pt"), "--out", str(out), str(data / "CameraRGB")]) == 2
    assert "000002.png: is corrupt" in capsys.readouterr().err
    assert not out.exists()


def test_module_entry_point_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "roadseg", "evaluate", "--model", str(tmp_path / "x.pt"),
                           "--data", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"roadseg: error: {tmp_path / 'x.pt'}: checkpoint not found; ")
    assert "shipped models: camvid" in lines[0]


def test_synth_cli(tmp_path):
    assert main(["synth", str(tmp_path / "s"), "--count", "2", "--size", "48x64", "--seed", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "s" / "CameraMask").iterdir()) == ["000000.png", "000001.png"]


def torch_loading(pid: int, timeout: float = 30.0) -> None:
    """Return once process `pid` has begun loading torch's libraries (so roadseg's handlers are in place):
    a fixed delay sent the signal before Python had imported roadseg on a loaded machine. Without /proc,
    a fixed 0.4 s."""
    maps = f"/proc/{pid}/maps"
    try:
        open(maps).close()
    except OSError:
        time.sleep(0.4)
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if "libtorch" in open(maps).read():
                return
        except OSError:
            return
        time.sleep(0.01)


@pytest.mark.parametrize("sig, when, command", [
    (signal.SIGTERM, 3.0, ["synth", "OUT", "--count", "400"]),        # while writing frames
    (signal.SIGINT, None, ["synth", "OUT", "--count", "400"]),        # while torch is still importing
])
def test_signals_end_a_command_in_one_line_and_leave_no_temporary_files(tmp_path, sig, when, command):
    """Issue 14, items 25 and 26."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "roadseg", *[str(out) if c == "OUT" else c for c in command]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    torch_loading(proc.pid) if when is None else time.sleep(when)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("roadseg: interrupted")
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_ctrl_c_inside_exec_code_still_exits_130(tmp_path):
    """A Ctrl-C that lands in code run by exec (dataclasses, namedtuples: common while torch imports)
    exits 130 with the one line, not killed by SIGINT at interpreter exit, under `python -m` as
    `roadseg` runs (the CI failure of stop 17: status -2)."""
    (tmp_path / "interrupted_info.py").write_text(
        "import sys\nfrom roadseg import cli\nimport roadseg.commands as c\n"
        "c.COMMANDS['info'] = lambda a: exec('import os, signal, time\\nos.kill(os.getpid(), signal.SIGINT)\\n"
        "time.sleep(5)')\nsys.exit(cli.main(['info', 'camvid']))\n")
    proc = subprocess.run([sys.executable, "-m", "interrupted_info"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("roadseg: interrupted (SIGINT)")


def test_help_shows_defaults_and_examples_and_version(capsys):
    """Issue 13, item 1 (part): --version, defaults shown, examples at the end of every command's help."""
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("roadseg ")
    for command in ("train", "predict", "evaluate", "export", "check", "models"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "examples:\n  roadseg " + command in text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "(default: 40)" in text and "(default: 0.001)" in text  # the notebook's epochs and lr
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "shipped model: camvid" in capsys.readouterr().out.replace("\n", " ").replace("  ", " ")
