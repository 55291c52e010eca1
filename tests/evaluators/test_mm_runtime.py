from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch

pytest.importorskip("mmengine", reason="needs mmengine (scripts/install_seg.sh)")

from mmengine.logging.history_buffer import HistoryBuffer  # noqa: E402

from evaluators.mm_runtime import resume_allowlist  # noqa: E402


def _saved(obj: object) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


def _runner_like_checkpoint() -> dict:
    history = HistoryBuffer()
    history.update(0.5)
    history.update(0.25)
    return {"state_dict": {"w": torch.ones(2)},
            "message_hub": {"log_scalars": {"train/loss": history},
                            "runtime_info": {"eta": np.float64(1.5), "ids": np.arange(3)}}}


def test_a_runner_checkpoint_loads_with_weights_only_under_the_allowlist() -> None:
    with pytest.raises(pickle.UnpicklingError, match="HistoryBuffer|getattr"):
        torch.load(_saved(_runner_like_checkpoint()), weights_only=True)
    with resume_allowlist():
        loaded = torch.load(_saved(_runner_like_checkpoint()), weights_only=True)
    history = loaded["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(history, HistoryBuffer) and history.current() == 0.25 and history.mean() == 0.375
    assert loaded["message_hub"]["runtime_info"]["eta"] == 1.5
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2))


class _Crafted:
    """Pickles as getattr(owner, name): anything but HistoryBuffer's statistics must be refused."""

    def __init__(self, owner: object, name: str) -> None:
        self.owner, self.name = owner, name

    def __reduce__(self):
        return (getattr, (self.owner, self.name))


@pytest.mark.parametrize(("owner", "name"), [(HistoryBuffer, "update"), (np.ndarray, "tofile")])
def test_getattr_beyond_the_history_statistics_is_refused(owner: object, name: str) -> None:
    with resume_allowlist(), pytest.raises(pickle.UnpicklingError, match="allowlist|getattr"):
        torch.load(_saved({"x": _Crafted(owner, name)}), weights_only=True)
