"""mmengine hooks of the segmentation runner (this module imports mmengine; import it lazily)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn


class LoadBackboneHook(Hook):
    """Load the converted backbone strictly, after mmengine initialised the model's weights.

    `Runner.train()` calls `model.init_weights()` after `before_run` and just before the train
    loop's `before_train`; loading here means nothing overwrites the checkpoint afterwards.
    The optimiser already holds the parameters: loading copies into them in place.
    """

    priority = "HIGHEST"

    def __init__(self, load: Callable[[nn.Module], None]) -> None:
        self._load = load
        self.loaded = False

    def before_train(self, runner: Any) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._load(model.backbone)
        self.loaded = True


class MetricsRecorder(Hook):
    """Keep every validation's metrics with the iteration they were computed at."""

    priority = "LOWEST"

    def __init__(self) -> None:
        self.history: list[tuple[int, dict[str, float]]] = []

    def after_val_epoch(self, runner: Any, metrics: Mapping[str, float] | None = None) -> None:
        # mmseg's IoUMetric rounds percentages to 2 decimals (as float32); keep exactly those
        self.history.append((int(runner.iter), {k: round(float(v), 2) for k, v in (metrics or {}).items()}))
