"""The tiny pretrain must keep learning: the NMI of its assignments with the true classes rises
over the epochs (with no learning, lr 0, it falls from 0.60 to 0.15; the current TINY measured
0.235 -> 0.465 -> 0.394), and the training loss does not diverge (the earlier tiny settings ended
epochs at 6.8 and 5.1, 3x and 2x ln k; the current TINY 2.549 and 2.458, ln k = 2.303).

Reads the pretrain log of the session's one `run_all.py --tiny` (tests/conftest.py `tiny_run_all`):
the `tiny` config exactly as `make demo` runs it, on the tiny ImageNet of `dcbench.tiny`.
The stronger criterion, a mean epoch loss below ln k, does not hold at this scale: see
pretrain.config.TINY_NOTE; it is pinned as a strict xfail so that it is noticed once it holds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from pretrain.config import TINY
from pretrain.metrics import read_log

LN_K = math.log(TINY.num_clusters)


@pytest.fixture(scope="module")
def tiny_log(tiny_run_all: tuple[Path, int]) -> list[dict[str, Any]]:
    work, _ = tiny_run_all
    log = read_log(work / "pretrain")
    assert log and all(row["config_name"] == TINY.name for row in log)  # the TINY config ran
    return log


def test_tiny_nmi_with_the_classes_rises(tiny_log: list[dict[str, Any]]) -> None:
    nmi = [row["nmi_gt"] for row in tiny_log]
    assert len(nmi) == TINY.epochs + 1
    assert nmi[-1] >= nmi[0] + 0.05, nmi


def test_tiny_training_loss_does_not_diverge(tiny_log: list[dict[str, Any]]) -> None:
    losses = [row["loss"] for row in tiny_log[1:]]
    assert max(losses) < 1.25 * LN_K, losses


@pytest.mark.xfail(strict=True, reason="30 steps per epoch do not fit the re-initialised head: TINY_NOTE")
def test_tiny_training_loss_is_below_ln_k_every_epoch(tiny_log: list[dict[str, Any]]) -> None:
    losses = [row["loss"] for row in tiny_log[1:]]
    assert max(losses) < LN_K, losses
