"""Checkpoints load safely: a pickle that would run code is refused."""
import pickle

import pytest
import torch

from roadseg.checkpoint import build_model, load_checkpoint
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
