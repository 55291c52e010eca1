"""Checks run before the long work: everything knowable at the start is refused at the start.

`run_all` calls these in order (invocation, device, output folders, README markers, data root,
checkpoint, datasets) so a run never dies after hours on a typo, a missing file or a malformed
annotation.  Exit codes (README "Exit codes"): 0 every benchmark ok (or skipped, when some data
is absent), 1 a benchmark failed (incl. a dataset found present but incomplete or malformed),
2 a bad invocation or input found before running (`UsageError`: one line on stderr, nothing
written to the results store or the README).

Datasets: each benchmark's readers are run up front (the same `dcbench.datasets` readers the
evaluators use, so every listed file is checked and every annotation parsed).  A dataset whose
root is absent makes the benchmark `skipped`; one that is present but incomplete or malformed
makes it `failed` with the first problems and their count; when every requested benchmark is
skipped for missing data the run refuses to start (exit 2) unless `--allow-missing`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dcbench.datasets import read_voc_cls, read_voc_det
from dcbench.datasets.common import DatasetIncompleteError, DatasetMissingError
from evaluators.classification.data import read_split
from evaluators.detection.coco import coco_splits
from evaluators.detection.voc0712 import voc_splits
from evaluators.segmentation import cityscapes, voc12aug
from evaluators.segmentation.runner import check_dataset
from evaluators.suite.registry import EVALUATORS, BenchmarkSpec, UnknownBenchmarkError, resolve

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad invocation or input found before running: reported as one line, exit 2."""


@dataclass(frozen=True)
class DataCheck:
    """What the up-front dataset check found for one benchmark (status None: ready to run)."""

    benchmark: str
    status: str | None  # None | 'skipped' | 'failed'
    reason: str | None = None
    layout: str | None = None


# ----------------------------------------------------------------------------- invocation
def benchmark_names(text: str) -> list[str]:
    """The `--benchmarks` value as registry names; an empty value is an error, not 'all'."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--benchmarks {text!r} names no benchmark; give names (comma-separated) or 'all'")
    try:
        return resolve(names)
    except UnknownBenchmarkError as err:
        raise UsageError(str(err)) from None


def check_device(text: str) -> torch.device:
    """`--device` parsed and checked to exist on this machine."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"--device {text!r} is not a torch device ({err}); use cpu, cuda or cuda:N") \
            from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "without CUDA"
            raise UsageError(f"--device {text}: CUDA is not available on this machine "
                             f"(torch {torch.__version__} built {build}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {text}: MPS is not available on this machine; use --device cpu")
    return device


def check_writable(path: Path, what: str, folder: bool) -> None:
    """`path` (a folder when `folder`, else a file) can be created or written; nothing is created."""
    if path.exists() and path.is_dir() != folder:
        kind = "a folder" if folder else "a file"
        raise UsageError(f"{what} {path} exists and is not {kind}")
    if path.exists() and not folder:
        if not os.access(path, os.W_OK):
            raise UsageError(f"{what} {path} is not writable")
        return
    parent = path if path.exists() else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{what} {path} cannot be created: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path} is not writable (no write permission on {parent})")


def check_data_root(data_root: Path) -> None:
    if not data_root.is_dir():
        state = "is not a folder" if data_root.exists() else "does not exist"
        raise UsageError(f"--data-root {data_root} {state}")


def check_tiny_root(data_root: Path) -> None:
    """`--tiny` writes its data at `data_root`: never over a folder that is not a tiny tree."""
    from dcbench.tiny import MARKER

    if data_root.exists() and not data_root.is_dir():
        raise UsageError(f"--tiny --data-root {data_root} is a file, not a folder")
    if data_root.is_dir() and any(data_root.iterdir()) and not (data_root / MARKER).exists():
        raise UsageError(f"--tiny --data-root {data_root} is a non-empty folder that is not a tiny data tree "
                         f"(no {MARKER}); it may hold real data, so it is not replaced. Use an empty or new "
                         "folder, or drop --tiny to run on it")


def load_backbone(ckpt: Path, ckpt_format: str | None = None, ckpt_key: str | None = None) -> Any:
    """The checkpoint read with the safe loader (format detected unless given); a refusal is one line."""
    from adapters import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(ckpt, ckpt_format, ckpt_key)
    except (CheckpointError, FileNotFoundError, IsADirectoryError) as err:
        raise UsageError(f"cannot use checkpoint {ckpt}: {err}") from None


# ----------------------------------------------------------------------------- tiny data
TINY_DATASETS: Mapping[str, tuple[str, ...]] = {
    "voc07_svm": ("voc2007",), "voc07_lowshot": ("voc2007",),
    "linear_imagenet": ("imagenet",), "linear_avgpool_imagenet": ("imagenet",),
    "linear_inat18": ("inat18",), "linear_avgpool_inat18": ("inat18",),
    "linear_places205": ("places205",), "linear_avgpool_places205": ("places205",),
    "semisup_1pct": ("imagenet",), "semisup_10pct": ("imagenet",),
    "det_voc0712": ("voc2007", "voc2012"), "det_coco": ("coco",),
    "seg_voc12aug": ("voc2012",), "seg_cityscapes": ("cityscapes",),
}


def tiny_datasets(names: Sequence[str], pretrain: bool) -> list[str]:
    """The tiny datasets the benchmarks `names` read (plus ImageNet for the tiny pretrain)."""
    wanted = [d for n in names for d in TINY_DATASETS[n]] + (["imagenet"] if pretrain else [])
    return list(dict.fromkeys(wanted))


# ----------------------------------------------------------------------------- datasets
Read = tuple[tuple[str, ...], Callable[[], object]]  # (key: the same read is done once, call)


def _read(key: tuple[object, ...], call: Callable[[], object]) -> Read:
    return tuple(str(k) for k in key), call


def _voc07(root: Path, _config: Any) -> list[Read]:
    voc = root / "VOCdevkit" / "VOC2007"
    return [_read(("voc_cls", voc, s), lambda s=s: read_voc_cls(voc, s)) for s in ("trainval", "test")]


def _classification(root: Path, config: Any) -> list[Read]:
    return [_read(("cls", config.dataset, s), lambda s=s: read_split(root, config.dataset, s))
            for s in ("train", "val")]


def _semisup(root: Path, config: Any) -> list[Read]:
    return [_read(("cls", "imagenet", "train", config.subset),
                  lambda: read_split(root, "imagenet", "train", config.subset)),
            _read(("cls", "imagenet", "val"), lambda: read_split(root, "imagenet", "val"))]


def _det_voc(root: Path, config: Any) -> list[Read]:
    splits = voc_splits(root, config.detectron2)
    return [_read(("voc_det", folder, split), lambda f=folder, s=split: read_voc_det(f, s))
            for folder, split, _ in (*splits.train, splits.test)]


def _det_coco(root: Path, config: Any) -> list[Read]:
    d2 = config.detectron2  # the splits both engines use
    return [_read(("coco", d2.train_split, d2.test_split), lambda: coco_splits(root, d2))]


def _seg(module: Any) -> Callable[[Path, Any], list[Read]]:
    def reads(root: Path, _config: Any) -> list[Read]:
        folder = root.joinpath(*module.SPEC.subdir)
        return [_read(("seg", module.SPEC.benchmark), lambda: check_dataset(module.SPEC, folder))]
    return reads


DATASET_READS: Mapping[str, Callable[[Path, Any], list[Read]]] = {
    "voc07_svm": _voc07, "voc07_lowshot": _voc07,
    "linear_imagenet": _classification, "linear_avgpool_imagenet": _classification,
    "linear_inat18": _classification, "linear_avgpool_inat18": _classification,
    "linear_places205": _classification, "linear_avgpool_places205": _classification,
    "semisup_1pct": _semisup, "semisup_10pct": _semisup,
    "det_voc0712": _det_voc, "det_coco": _det_coco,
    "seg_voc12aug": _seg(voc12aug), "seg_cityscapes": _seg(cityscapes),
}


def _outcome(name: str, err: Exception) -> DataCheck:
    if isinstance(err, DatasetMissingError):
        return DataCheck(name, "skipped", str(err), err.layout)
    if isinstance(err, DatasetIncompleteError):
        return DataCheck(name, "failed", str(err))
    return DataCheck(name, "failed", f"dataset check: {type(err).__name__}: {err}")


def check_datasets(names: Sequence[str], data_root: Path, tiny: bool,
                   registry: Mapping[str, BenchmarkSpec] = EVALUATORS) -> list[DataCheck]:
    """Run every benchmark's dataset reads once (shared reads once in all); one DataCheck each."""
    done: dict[tuple[str, ...], Exception | None] = {}
    checks = []
    for name in names:
        spec = registry[name]
        if spec.run is None or name not in DATASET_READS:
            checks.append(DataCheck(name, None))
            continue
        errors = []
        for key, call in DATASET_READS[name](data_root, spec.tiny if tiny else spec.config):
            if key not in done:
                try:
                    call()
                    done[key] = None
                except (DatasetMissingError, DatasetIncompleteError, ValueError, OSError) as err:
                    done[key] = err
            errors += [done[key]] if done[key] is not None else []
        # a dataset present but broken outweighs another one that is absent: failed, not skipped
        errors.sort(key=lambda e: isinstance(e, DatasetMissingError))
        checks.append(_outcome(name, errors[0]) if errors else DataCheck(name, None))
    return checks


def all_missing_message(checks: Sequence[DataCheck], data_root: Path) -> str:
    """The refusal when every requested benchmark lacks its data: each reason, then the layouts."""
    lines = [f"no dataset of the requested benchmark(s) is under --data-root {data_root} "
             "(pass --allow-missing to record them as skipped and exit 0):"]
    lines += [f"  {c.benchmark}: {(c.reason or '').splitlines()[0]}" for c in checks]
    layouts = list(dict.fromkeys(c.layout for c in checks if c.layout))
    lines += ["Expected layout(s):", *(line for layout in layouts for line in layout.rstrip().splitlines())]
    return "\n".join(lines)
