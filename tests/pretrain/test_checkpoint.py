from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from pretrain import checkpoint as C


def _payload(epoch: int) -> dict[str, object]:
    return {
        "format": C.FORMAT, "epoch": epoch, "config_name": "tiny", "config": {"epochs": 2}, "sobel": False,
        "backbone": {"conv1.weight": torch.full((2, 2), float(epoch))},
        "head": {"weight": torch.zeros(3, 2), "bias": torch.zeros(3)},
        "optimizer": {"state": {}, "param_groups": []}, "rng": C.rng_state(),
        "assignments": torch.arange(5),
    }


def test_save_load_roundtrip_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "epoch_0001.pth"
    C.save_checkpoint(path, _payload(1))
    raw = torch.load(path, weights_only=True)
    assert set(raw) == set(C.REQUIRED_KEYS)
    assert C.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["epoch_0001.pth"]  # no temporary left behind


def test_refuses_incomplete_payload_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(C.CheckpointError, match="without keys \\['rng'"):
        C.save_checkpoint(tmp_path / "x.pth", {k: v for k, v in _payload(1).items() if k != "rng"})
    torch.save({"state_dict": {}}, tmp_path / "foreign.pth")
    with pytest.raises(C.CheckpointError, match="format None"):
        C.load_checkpoint(tmp_path / "foreign.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(C.CheckpointError, match="cannot read checkpoint"):
        C.load_checkpoint(tmp_path / "junk.pth")


def test_resume_falls_back_past_corrupt_files(tmp_path: Path) -> None:
    for epoch in (1, 2, 3):
        C.save_checkpoint(C.epoch_path(tmp_path, epoch), _payload(epoch))
    C.save_checkpoint(tmp_path / C.LATEST, _payload(3))
    path, ckpt = C.load_for_resume(tmp_path)
    assert path.name == C.LATEST and ckpt["epoch"] == 3
    for name in (C.LATEST, "epoch_0003.pth"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])  # truncated, as by a crash mid-copy
    with pytest.warns(RuntimeWarning) as caught:
        path, ckpt = C.load_for_resume(tmp_path)
    assert path.name == "epoch_0002.pth" and ckpt["epoch"] == 2
    assert {Path(str(w.message).split("checkpoint ")[-1].split(":")[0]).name for w in caught} == {
        C.LATEST, "epoch_0003.pth"}
    assert C.load_for_resume(tmp_path / "empty") is None


def test_prune_keeps_newest_epoch_files(tmp_path: Path) -> None:
    for epoch in (1, 2, 10, 11):
        C.save_checkpoint(C.epoch_path(tmp_path, epoch), _payload(epoch))
    C.save_checkpoint(tmp_path / C.LATEST, _payload(11))
    C.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0010.pth", "epoch_0011.pth", "latest.pth"]


def test_rng_state_roundtrip_through_weights_only(tmp_path: Path) -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    state = C.rng_state()
    torch.save(state, tmp_path / "rng.pth")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    C.restore_rng(torch.load(tmp_path / "rng.pth", weights_only=True))
    torch.testing.assert_close(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]
