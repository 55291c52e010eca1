from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dcbench.distributed import (
    DistInfo,
    batch_bounds,
    broadcast_object,
    gather_objects,
    gather_ranges,
    init_distributed,
    on_main,
    on_main_rank,
    per_rank_batch,
    reduce_sum,
    shutdown,
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


@pytest.mark.parametrize(("num", "batch", "world"),
                         [(10, 3, 1), (10, 3, 2), (420, 25, 2), (3, 2, 3), (7, 2, 8)])
def test_batch_bounds_are_whole_batches_of_one_process_split_evenly(num: int, batch: int, world: int) -> None:
    bounds = batch_bounds(num, batch, world)
    assert len(bounds) == world and bounds[0][0] == 0 and bounds[-1][1] == num
    assert all(a[1] == b[0] for a, b in zip(bounds[:-1], bounds[1:], strict=True))  # contiguous, in order
    one_process = {(s, min(s + batch, num)) for s in range(0, num, batch)}
    counts = []
    for start, stop in bounds:
        mine = {(s, min(s + batch, stop)) for s in range(start, stop, batch)}
        assert mine <= one_process  # a rank's batches are batches of the one-process loader
        counts.append(len(mine))
    assert bounds[0][1] > 0 and max(counts) - min(counts) <= 1


def test_batch_bounds_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="batch_size=0"):
        batch_bounds(4, 0, 2)


def test_single_process_sharing_helpers_are_identity() -> None:
    info = DistInfo(0, 1, torch.device("cpu"))
    assert on_main(lambda: [1, 2], info) == [1, 2]
    assert broadcast_object({"a": 1}, info) == {"a": 1} and gather_objects(3, info) == [3]
    out = np.arange(6.0).reshape(3, 2)
    gather_ranges(out, out, [(0, 3)], info)  # nothing to receive
    np.testing.assert_array_equal(out, np.arange(6.0).reshape(3, 2))


def _on_main_rank(root: Path) -> None:
    """One torchrun rank of the on_main test (this file run as a script)."""
    info = init_distributed(torch.device("cpu"))
    calls = []
    value = on_main(lambda: calls.append(info.rank) or {"rows": [info.rank, 7]}, info)
    try:
        on_main(lambda: 1 / 0, info)
        error = "no error"
    except (RuntimeError, ZeroDivisionError) as err:
        error = f"{type(err).__name__}: {err}"
    (root / f"rank{info.rank}.json").write_text(json.dumps({"value": value, "calls": calls, "error": error}))
    shutdown(info)


def test_on_main_runs_on_rank_0_and_hands_result_or_error_to_the_others(
    tmp_path: Path, torchrun_ranks: Callable[..., list[dict]],
) -> None:
    seen = torchrun_ranks(Path(__file__), 2, tmp_path)
    assert [s["value"] for s in seen] == [{"rows": [0, 7]}] * 2  # rank 0's result everywhere
    assert [s["calls"] for s in seen] == [[0], []]  # the step ran on rank 0 only
    assert seen[0]["error"].startswith("ZeroDivisionError")
    assert seen[1]["error"].startswith("RuntimeError: rank 0 failed: ZeroDivisionError")


if __name__ == "__main__":  # a rank of test_on_main_runs_on_rank_0_and_hands_result_or_error_to_the_others
    _on_main_rank(Path(sys.argv[1]))
