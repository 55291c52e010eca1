from __future__ import annotations

import pytest
import torch
from torch import nn

from dcbench.distributed import (
    DistInfo,
    init_distributed,
    on_main_rank,
    per_rank_batch,
    reduce_sum,
    unwrap,
    wrap_ddp,
)


def test_single_process_uses_the_given_device_and_identity_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed(torch.device("cpu"))
    assert (info.rank, info.world_size, info.device, info.owns_group) == (0, 1, torch.device("cpu"), False)
    assert info.is_main and not info.distributed
    value = torch.tensor([1.0, 2.0])
    summed = reduce_sum(value, info)
    assert torch.equal(summed, value) and summed is not value
    module = nn.Linear(2, 2)
    assert wrap_ddp(module, info) is module and unwrap(module) is module


def test_per_rank_batch_splits_the_total_batch() -> None:
    assert per_rank_batch(256, DistInfo(1, 4, torch.device("cpu"))) == 64
    with pytest.raises(ValueError, match="not divisible"):
        per_rank_batch(256, DistInfo(0, 3, torch.device("cpu")))


def test_on_main_rank_runs_the_work_once_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    calls: list[int] = []
    on_main_rank(lambda: calls.append(1))
    assert calls == [1] and not torch.distributed.is_initialized()
    with pytest.raises(KeyError):
        on_main_rank(lambda: {}["missing"])  # the work's error reaches the caller
