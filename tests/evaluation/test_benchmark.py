"""`roadseg benchmark`: a row per backend and format, the pip command for a missing extra, --json."""
import json
import sys

from roadseg.cli import main
from roadseg.evaluation.benchmark import benchmark


def test_every_backend_gets_a_row_and_a_missing_extra_its_pip_line(trained, carla_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if the openvino extra were not installed
    rows = benchmark(str(trained / "best.pt"), str(carla_dir))
    assert [(r["backend"], r["format"]) for r in rows] == [
        ("torch", "pt"), ("winograd", "pt"), ("onnxruntime", "onnx fp32"), ("openvino", "onnx fp32"),
        ("onnxruntime", "onnx int8"), ("openvino", "onnx int8")]
    for row in rows:
        if row["backend"] == "openvino":
            assert row["note"] == "not installed: pip install 'roadseg[openvino]'"
        elif "note" not in row:
            assert row["fps_b8"] > 0 and row["latency_ms"] > 0 and 0 <= row["val_miou"] <= 1
    eager, onnx = rows[0], rows[2]
    assert abs(eager["val_miou"] - onnx["val_miou"]) < 1e-3  # the same network, fp32


def test_cli_writes_json(trained, tmp_path, capsys):
    assert main(["benchmark", "--model", str(trained / "best.pt"), "--json", str(tmp_path / "b.json")]) == 0
    assert "fps b8" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "b.json").read_text())) == 6
