"""What run_all hands every evaluator besides the backbone, data root and config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class RunContext:
    work_dir: Path  # this benchmark's own scratch/output folder (resumable state lives here)
    cache_dir: Path  # shared feature cache, keyed by checkpoint sha256 / dataset / split / tap
    device: torch.device
    seed: int
    num_workers: int = 0
    progress: bool = True  # tqdm bars on long loops
    num_gpus: int = 1  # passed to external launchers (detectron2)
    det_engine: str = "auto"  # detection engine: 'auto' (detectron2 where importable), 'mmdet', 'detectron2'
