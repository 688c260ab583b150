"""The checkpoint format: safe loading (a pickle that would run code is refused), format versions,
every writer going through one builder, and how model names resolve."""
import pickle

import pytest
import torch

from roadseg.checkpoint import FORMAT_VERSION, build_model, load_checkpoint, resolve_model_path
from roadseg.errors import InputError


class Payload:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_pickle_payload_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("evil.pt", "wb") as f:
        pickle.dump({"model": Payload(), "classes": {}}, f)
    with pytest.raises(InputError, match="refused"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()


def test_truncated_and_foreign_files(tmp_path, trained):
    data = (trained / "best.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.pt"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a roadseg checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_is_self_contained(trained):
    ckpt = load_checkpoint(trained / "best.pt")
    assert ckpt["classes"]["names"][7] == "Road"
    assert ckpt["input"]["size"] == [32, 48]
    assert ckpt["training"]["history"] and ckpt["training"]["config"]["epochs"] == 2
    model = build_model(ckpt)
    assert model(torch.rand(1, 3, 32, 48)).shape == (1, 23, 32, 48)


def test_format_1_files_load_as_the_unet():
    """The shipped camvid-unet.pt predates `arch`: it loads as the notebook's U-Net, upgraded in memory."""
    raw = torch.load(resolve_model_path("camvid-unet"), weights_only=True)
    assert raw["format_version"] == 1 and "arch" not in raw["model"]
    ckpt = load_checkpoint("camvid-unet")
    assert ckpt["format_version"] == FORMAT_VERSION and ckpt["model"]["arch"] == "unet"
    assert ckpt["input"]["size_multiple"] == 16 and type(build_model(ckpt)).__name__ == "UNet"


def test_newer_formats_and_missing_parts_are_one_clear_line(trained, tmp_path):
    ckpt = load_checkpoint(trained / "best.pt")
    torch.save({**ckpt, "format_version": FORMAT_VERSION + 1}, tmp_path / "new.pt")
    with pytest.raises(InputError, match="newer roadseg"):
        load_checkpoint(tmp_path / "new.pt")
    torch.save({**ckpt, "classes": {"colors": []}}, tmp_path / "part.pt")
    with pytest.raises(InputError, match=r"no classes\.names"):
        load_checkpoint(tmp_path / "part.pt")


def test_every_writer_records_the_network_and_format(trained, tmp_path):
    from roadseg.cli import main
    assert main(["export", "--model", str(trained / "best.pt"), "--format", "pt", str(tmp_path / "s.pt")]) == 0
    for path in (trained / "best.pt", trained / "last.pt", tmp_path / "s.pt"):
        raw = torch.load(path, weights_only=True)
        assert raw["format_version"] == FORMAT_VERSION and raw["model"]["arch"] == "unet"
        assert raw["input"]["size_multiple"] == 4  # the fixture's depth-3 U-Net


def test_a_shipped_name_is_not_hidden_by_a_folder_and_run_folders_use_best(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "camvid").mkdir()  # a dataset folder named like the shipped model
    assert resolve_model_path("camvid").name == "camvid.pt"
    assert resolve_model_path(trained) == trained / "best.pt"
    assert "using" in capsys.readouterr().err
    (tmp_path / "frame.pt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(InputError, match="not a roadseg checkpoint"):
        load_checkpoint(tmp_path / "frame.pt")


@pytest.mark.parametrize("keep", [0, 1, 3, 100])
def test_a_cut_checkpoint_says_truncated(trained, tmp_path, keep):
    """Issue 14, item 29: not 'refused: unsafe objects'."""
    cut = tmp_path / "cut.pt"
    cut.write_bytes((trained / "best.pt").read_bytes()[:keep])
    with pytest.raises(InputError, match="truncated"):
        load_checkpoint(cut)
