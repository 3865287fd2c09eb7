"""Run-directory checkpoints: layout, checksums, atomic `latest`, optimiser round trip."""

import json

import pytest
import torch

from bora_trainer import checkpoint as C


def _model_and_opt():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    m[1].weight = torch.nn.Parameter(m[1].weight)  # plain
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=1e-4)
    m(torch.randn(5, 3)).sum().backward()
    opt.step()
    return m, opt


def test_save_load_round_trip_and_layout(tmp_path):
    m, opt = _model_and_opt()
    C.write_run_files(tmp_path, config={"a": 1}, normalizer={"version": "abc"})
    path = C.save_checkpoint(
        tmp_path, 10, {"actor": m.state_dict()}, {"optimizer": opt.state_dict(), "step": 10}
    )
    assert path.name == "step_0000010"
    assert (tmp_path / "latest").read_text().strip() == "step_0000010"
    assert (tmp_path / "config.yaml").exists() and json.loads((tmp_path / "normalizer.json").read_text())
    meta = json.loads((path / "meta.json").read_text())
    assert meta["step"] == 10 and meta["code_version"]
    assert set(meta["files"]) == {"actor.safetensors", "trainer_state.pt"}
    assert meta["files"]["actor.safetensors"] == C.sha256_file(path / "actor.safetensors")
    ck = C.load_checkpoint(tmp_path)
    for k, v in m.state_dict().items():
        assert torch.equal(ck["modules"]["actor"][k], v)
    m2, _ = _model_and_opt()
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-2)
    opt2.load_state_dict(ck["trainer_state"]["optimizer"])
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg"], s2[i]["exp_avg"]) for i in s1)


def test_tied_weights_and_retention(tmp_path):
    lin = torch.nn.Linear(2, 2)
    state = {"a": lin.weight, "b": lin.weight}  # aliased storage
    for step in (1, 2, 3, 4):
        C.save_checkpoint(tmp_path, step, {"m": state}, keep_last=2)
    assert [p.name for p in C.list_checkpoints(tmp_path)] == ["step_0000003", "step_0000004"]
    assert C.load_checkpoint(tmp_path)["step"] == 4
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))


def test_corruption_is_detected(tmp_path):
    path = C.save_checkpoint(tmp_path, 5, {"m": {"w": torch.ones(3)}})
    data = bytearray((path / "m.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "m.safetensors").write_bytes(bytes(data))
    with pytest.raises(C.CheckpointError, match="sha256"):
        C.load_checkpoint(path)


def test_failed_write_keeps_previous_latest(tmp_path):
    C.save_checkpoint(tmp_path, 1, {"m": {"w": torch.ones(3)}})
    with pytest.raises(C.CheckpointError):
        C.save_checkpoint(tmp_path, 2, {"m": {"w": "not a tensor"}})
    assert C.latest_checkpoint(tmp_path).name == "step_0000001"
    assert [p.name for p in C.list_checkpoints(tmp_path)] == ["step_0000001"]
    assert not list((tmp_path / "checkpoints").glob(".*"))
