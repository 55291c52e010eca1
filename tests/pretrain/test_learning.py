"""The tiny pretrain must keep learning (figures of the current TINY, from pretrain.config.TINY_NOTE):
- every epoch's mean training loss is below ln k = 2.303, the loss of a uniform guess over the k
  pseudo-classes (2.19, 1.81, 1.61), and it falls from epoch to epoch (earlier tiny settings ended
  epochs at 6.8 and 5.1, 3x and 2x ln k);
- the NMI of the assignments with the true classes never falls and rises overall (0.235 -> 0.427 ->
  0.542 -> 0.551), and the NMI with the previous assignment rises (0.33 -> 0.72): the clustering
  settles.

Reads the pretrain log of the session's one `run_all.py --tiny` (tests/conftest.py `tiny_run_all`):
the `tiny` config exactly as `make demo` runs it, on the tiny ImageNet of `dcbench.tiny`; the run is
deterministic on the CPU, so the margins below are the config's, not luck's.
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


def test_tiny_training_loss_is_below_ln_k_every_epoch(tiny_log: list[dict[str, Any]]) -> None:
    losses = [row["loss"] for row in tiny_log[1:]]
    assert max(losses) < 0.97 * LN_K, losses


def test_tiny_training_loss_falls_every_epoch(tiny_log: list[dict[str, Any]]) -> None:
    losses = [row["loss"] for row in tiny_log[1:]]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    assert losses[-1] < 0.8 * LN_K, losses


def test_tiny_nmi_with_the_classes_never_falls_and_rises(tiny_log: list[dict[str, Any]]) -> None:
    nmi = [row["nmi_gt"] for row in tiny_log]
    assert all(b >= a for a, b in zip(nmi, nmi[1:], strict=False)), nmi
    assert nmi[-1] >= nmi[0] + 0.2, nmi


def test_tiny_assignments_settle(tiny_log: list[dict[str, Any]]) -> None:
    nmi_prev = [row["nmi_prev"] for row in tiny_log[1:]]
    assert nmi_prev[-1] >= nmi_prev[0] + 0.2, nmi_prev

