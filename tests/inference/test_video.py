"""Video input: every frame segmented, an overlay video of the same size and length written."""
import imageio_ffmpeg
import numpy as np

from roadseg.cli import main
from roadseg.data.synth import render_scene
from roadseg.inference.video import read_video


def _write_video(path, frames, fps=10):
    h, w = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()


def test_video_overlay(trained, tmp_path, capsys):
    frames = [render_scene(np.random.default_rng([4, i]), (64, 96))[0] for i in range(11)]
    _write_video(tmp_path / "drive.mp4", frames)
    assert main(["predict", "--model", str(trained / "best.pt"), str(tmp_path / "drive.mp4"),
                 "--out", str(tmp_path / "out")]) == 0
    assert "11 frames at" in capsys.readouterr().out
    meta, out_frames = read_video(tmp_path / "out" / "drive_overlay.mp4")
    out_frames = list(out_frames)
    assert meta["size"] == (96, 64) and len(out_frames) == 11
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_bad_video(trained, tmp_path, capsys):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    assert main(["predict", "--model", str(trained / "best.pt"), str(tmp_path / "broken.mp4"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "broken.mp4: cannot be read as a video" in err and len(err.strip().splitlines()) == 1
