"""Running an OpenMMLab model through mmengine's Runner: our hooks and the resume allowlist.

Shared by the mmdetection engine (evaluators.detection.mm_engine); the segmentation runner has
the same two hooks in evaluators/segmentation/mm_hooks.py and can move onto these.  This module
imports mmengine: import it lazily, only when a benchmark runs.

- `LoadWeightsHook`: after mmengine initialised the weights (`model.init_weights()` runs between
  `before_run` and the train loop's `before_train`), load our converted backbone into the model
  with a checked, strict load.  On a resumed run (the iteration counter is past 0) the weights
  came from the resumed checkpoint and are left alone.
- `MetricsRecorder`: every validation's metrics, with the iteration (or epoch) it ran at.
- `resume_allowlist()`: a context in which torch.load with `weights_only=True` (torch's default)
  accepts mmengine's own Runner checkpoints: they pickle `HistoryBuffer` objects of the message
  hub (whose `__getstate__` pickles `builtins.getattr(HistoryBuffer, "min")` and the like) and numpy
  arrays/scalars.  Only those globals are allowed, and `getattr` is replaced by a stand-in that
  returns nothing but HistoryBuffer's four statistics methods.  `weights_only=False` is never used.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import is_model_wrapper
from torch import nn

HISTORY_METHODS = ("min", "max", "current", "mean")


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


def close_file_logs(runner: Any) -> None:
    """Close the Runner's log-file handlers (mmengine keeps them open after the run)."""
    for handler in list(runner.logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            runner.logger.removeHandler(handler)


def _history_getattr(obj: object, name: str) -> Any:
    """The stand-in for `builtins.getattr` while unpickling: HistoryBuffer statistics only."""
    if obj is HistoryBuffer and name in HISTORY_METHODS:  # HistoryBuffer pickles its statistics methods
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f"getattr({obj!r}, {name!r}) is not on the mmengine resume allowlist")


def _numpy_globals() -> list[Any]:
    multiarray = getattr(np, "_core", None) or np.core  # numpy 2 renamed core -> _core
    dtypes = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGUSO"]
    return [multiarray.multiarray._reconstruct, multiarray.multiarray.scalar, np.ndarray, np.dtype, *dtypes]


def resume_globals() -> list[Any]:
    """Everything an mmengine Runner checkpoint needs beyond tensors (see the module docstring)."""
    return [HistoryBuffer, *_numpy_globals(), (_history_getattr, "builtins.getattr")]


@contextlib.contextmanager
def resume_allowlist() -> Iterator[None]:
    """torch.load(weights_only=True) accepts mmengine Runner checkpoints inside this context."""
    with torch.serialization.safe_globals(resume_globals()):
        yield
