"""The tiny pretrain must keep learning (figures of the current TINY, from pretrain.config.TINY_NOTE):
- from the second epoch on, each epoch's mean training loss is below ln k = 2.303 (2.41, 2.27, 2.08,
  1.94), and the loss falls over the epochs; the first epoch trains on the random init's clusters and
  is only required not to diverge (earlier tiny settings ended epochs at 6.8 and 5.1, 3x and 2x ln k);
- the NMI of the assignments with the true classes rises (0.235 -> 0.551) and so does the NMI with
  the previous assignment (0.25 -> 0.72): the clustering settles.

Reads the pretrain log of the session's one `run_all.py --tiny` (tests/conftest.py `tiny_run_all`):
the `tiny` config exactly as `make demo` runs it, on the tiny ImageNet of `dcbench.tiny`.  The
strongest criterion, the first epoch below ln k too, does not hold (see TINY_NOTE); it is pinned as a
strict xfail so that it is noticed once it holds.
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
    assert len(log) == TINY.epochs + 1 and TINY.epochs >= 3
    return log


def test_tiny_nmi_with_the_classes_rises(tiny_log: list[dict[str, Any]]) -> None:
    nmi = [row["nmi_gt"] for row in tiny_log]
    assert nmi[-1] >= nmi[0] + 0.2, nmi


def test_tiny_assignments_settle(tiny_log: list[dict[str, Any]]) -> None:
    nmi_prev = [row["nmi_prev"] for row in tiny_log[1:]]
    assert nmi_prev[-1] >= nmi_prev[0] + 0.2, nmi_prev


def test_tiny_first_epoch_loss_does_not_diverge(tiny_log: list[dict[str, Any]]) -> None:
    assert tiny_log[1]["loss"] < 1.1 * LN_K, tiny_log[1]


def test_tiny_training_loss_is_below_ln_k_from_the_second_epoch(tiny_log: list[dict[str, Any]]) -> None:
    losses = [row["loss"] for row in tiny_log[1:]]
    assert max(losses[1:]) < LN_K, losses


def test_tiny_training_loss_falls(tiny_log: list[dict[str, Any]]) -> None:
    losses = [row["loss"] for row in tiny_log[1:]]
    assert losses[-1] < min(losses[:-1]) and losses[-1] < 0.9 * LN_K, losses


@pytest.mark.xfail(strict=True, reason="epoch 1 fits the random init's clusters for 30 steps: TINY_NOTE")
def test_tiny_training_loss_is_below_ln_k_every_epoch(tiny_log: list[dict[str, Any]]) -> None:
    losses = [row["loss"] for row in tiny_log[1:]]
    assert max(losses) < LN_K, losses
