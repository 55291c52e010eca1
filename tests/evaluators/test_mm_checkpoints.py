"""mmengine checkpoint files on disk: newest first by number, removal after success (no mmengine needed)."""

from __future__ import annotations

from pathlib import Path

from evaluators.mm_checkpoints import LAST_CHECKPOINT, checkpoints, remove_checkpoints, resume_point


def test_newest_first_by_number_and_only_runner_checkpoints(tmp_path: Path) -> None:
    for name in ("iter_9.pth", "iter_10.pth", "iter_2.pth", "backbone_mmseg.pth", "iter_x.pth", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in checkpoints(tmp_path)] == ["iter_10.pth", "iter_9.pth", "iter_2.pth"]
    assert checkpoints(tmp_path / "absent") == [] and resume_point(tmp_path / "absent") is None


def test_remove_deletes_the_checkpoints_and_pointer_only(tmp_path: Path) -> None:
    for name in ("iter_2.pth", "epoch_1.pth", LAST_CHECKPOINT, "backbone_mmseg.pth", "run.log"):
        (tmp_path / name).write_bytes(b"x")
    remove_checkpoints(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backbone_mmseg.pth", "run.log"]
    remove_checkpoints(tmp_path / "absent")  # nothing to remove is fine
