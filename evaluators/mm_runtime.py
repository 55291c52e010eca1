"""Running an OpenMMLab model through mmengine's Runner: our hooks and the resume allowlist.

Shared by the mmdetection engine (evaluators.detection.mm_engine) and the segmentation runner
(evaluators.segmentation.runner).  This module imports mmengine: import it lazily, only when a
benchmark runs.

- `LoadWeightsHook`: after mmengine initialised the weights (`model.init_weights()` runs between
  `before_run` and the train loop's `before_train`), load our converted backbone into the model
  with a checked, strict load.  On a resumed run (the iteration counter is past 0) the weights
  came from the resumed checkpoint and are left alone.
- `MetricsRecorder`: every validation's metrics, with the iteration (or epoch) it ran at.
- `TrainProgress`: the iteration training started at (past 0 when resumed) and how many ran.
- `resume_allowlist()`: a context in which torch.load with `weights_only=True` (torch's default)
  accepts mmengine's own Runner checkpoints, through the one mmengine allowlist of the project
  (`adapters.safe_load.mmengine_safe_globals`: HistoryBuffer, numpy arrays/scalars, and a
  `getattr` stand-in returning only HistoryBuffer's statistics).  `weights_only=False` is never used.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from adapters.safe_load import mmengine_safe_globals


class LoadWeightsHook(Hook):
    """Call `load(model)` (the unwrapped model) once, before the first training iteration."""

    priority = "HIGHEST"

    def __init__(self, load: Callable[[nn.Module], None]) -> None:
        self._load = load
        self.loaded = False
        self.resumed = False

    def before_train(self, runner: Any) -> None:
        if int(runner.iter) > 0 or int(runner.epoch) > 0:
            self.resumed = True  # the weights are the resumed checkpoint's
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._load(model)
        self.loaded = True


class MetricsRecorder(Hook):
    """Keep every validation's metrics (as floats) with the iteration and epoch it ran at."""

    priority = "LOWEST"

    def __init__(self) -> None:
        self.history: list[tuple[int, int, dict[str, float]]] = []

    def after_val_epoch(self, runner: Any, metrics: Mapping[str, float] | None = None) -> None:
        self.history.append((int(runner.iter), int(runner.epoch),
                             {k: float(v) for k, v in (metrics or {}).items()}))


class TrainProgress(Hook):
    """The iteration this run's training started at (past 0 on a resumed run) and how many it ran."""

    priority = "LOWEST"

    def __init__(self) -> None:
        self.first_iter: int | None = None
        self.iters_run = 0

    def before_train(self, runner: Any) -> None:
        self.first_iter = int(runner.iter)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        self.iters_run += 1


def close_file_logs(runner: Any) -> None:
    """Close the Runner's log-file handlers (mmengine keeps them open after the run)."""
    for handler in list(runner.logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            runner.logger.removeHandler(handler)


@contextlib.contextmanager
def resume_allowlist() -> Iterator[None]:
    """torch.load(weights_only=True) accepts mmengine Runner checkpoints inside this context."""
    with torch.serialization.safe_globals(mmengine_safe_globals()):
        yield
