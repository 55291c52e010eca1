"""Cached frozen-feature extraction: one pass over the images for every requested tap.

Cache layout: `cache_dir/<checkpoint sha256>/<dataset>/<split>/<tap>__<transform id>.npy`
(float32, one row per image in dataset order) plus `<tap>__<transform id>.json` recording the
row count and the image-list fingerprint. Files are written atomically (dcbench.fileio), so an
interrupted run leaves nothing that looks complete; the temporary files of a killed run are
removed by the next extraction into the same folder. A later call with the same key and images
loads the arrays (memory-mapped) without building or running the model.

Under torchrun (`dist`, world size N > 1) each rank extracts a contiguous run of whole batches
(`dcbench.distributed.batch_bounds`: the batches of a one-process run, so rank 0's assembled
features are bit-identical to it), rank 0 writes its own rows into the temporary memory maps and
receives the others' per tap at their offsets (`gather_ranges`: chunked, no extra full copy), and
renames the files only after every rank's rows are in; rank 0 alone touches the cache folder.

Speed (`benchmarks/bench_extraction.py` times it against a bare eager torchvision loop): inference
mode, the model and batches in channels_last (oneDNN / cuDNN run NHWC convolutions faster), pinned
host memory and non-blocking copies on CUDA, optional `torch.compile`. `precision="bf16"` runs the
model under CUDA bfloat16 autocast: a deviation from the reference's fp32 features, so it is part
of the cache key (file name) and recorded in the metadata; the default stays fp32.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.lib.format import open_memmap
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from dcbench.distributed import (
    DistInfo,
    barrier,
    batch_bounds,
    broadcast_object,
    gather_objects,
    gather_ranges,
)
from dcbench.fileio import atomic_path, atomic_write_text, sweep_stale

LOG = logging.getLogger(__name__)
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
# fp32: the reference; bf16: CUDA autocast to bfloat16 (faster on tensor cores, features differ ~1e-2)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class FeatureKey:
    """What a cached feature file depends on (besides the tap)."""

    checkpoint_sha256: str
    dataset: str  # e.g. 'voc07'
    split: str  # e.g. 'trainval'
    transform_id: str  # names the preprocessing, e.g. 'resize256-224x224-imnet'
    precision: str = "fp32"  # PRECISIONS; anything but fp32 is a recorded protocol deviation

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"FeatureKey.precision={self.precision!r}; known: {sorted(PRECISIONS)}")
        for name in ("checkpoint_sha256", "dataset", "split", "transform_id"):
            value = getattr(self, name)
            if not _SAFE.match(value):
                raise ValueError(f"FeatureKey.{name}={value!r} must be a plain file-name component "
                                 "(letters, digits, . _ + = -)")

    def path(self, cache_dir: Path, tap: str) -> Path:
        folder = Path(cache_dir) / self.checkpoint_sha256 / self.dataset / self.split
        suffix = "" if self.precision == "fp32" else f"__{self.precision}"
        return folder / f"{tap}__{self.transform_id}{suffix}.npy"


def fingerprint(items: Iterable[object]) -> str:
    """sha256 (16 hex digits) of an ordered list of image identifiers (paths, ids)."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(str(item).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _cached(path: Path, rows: int, images: str) -> bool:
    if not path.exists() or not _meta_path(path).exists():
        return False
    try:
        meta = json.loads(_meta_path(path).read_text())
        shape = np.load(path, mmap_mode="r").shape
    except (OSError, ValueError):
        return False
    return meta.get("rows") == rows and meta.get("images") == images and shape[0] == rows


def _images(batch: object) -> torch.Tensor:
    images = batch[0] if isinstance(batch, (list, tuple)) else batch
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"the dataset must yield image tensors or (image, target) pairs; got {type(images)}")
    return images


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    if device.type != "cuda":
        raise ValueError(f"precision {precision!r} is only offered on CUDA (fp32 is the reference)")
    return torch.autocast("cuda", dtype=dtype)


@dataclass(frozen=True)
class _Run:
    """How the batches are read and run (the same for every rank)."""

    batch_size: int
    num_workers: int
    device: torch.device
    progress: bool
    channels_last: bool
    precision: str

    def loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                          pin_memory=self.device.type == "cuda")

    @property
    def forward_args(self) -> tuple[torch.device, bool, bool, str]:
        return self.device, self.progress, self.channels_last, self.precision


Alloc = Callable[[str, int], np.ndarray]  # (tap, feature dim) -> the array the rows are written into


def _forward_rows(model: nn.Module, loader: DataLoader, taps: Sequence[str], alloc: Alloc, offset: int,
                  device: torch.device, progress: bool, channels_last: bool, precision: str
                  ) -> tuple[dict[str, np.ndarray], int]:
    """Run `loader` through `model` in order, writing each tap's rows from row `offset` on into
    alloc(tap, dim) (called at the first batch); returns the arrays and the number of images."""
    arrays: dict[str, np.ndarray] = {}
    start = offset
    layout = torch.channels_last if channels_last else torch.contiguous_format
    with _eval_mode(model), torch.inference_mode(), _autocast(device, precision):
        for batch in tqdm(loader, desc=f"features {'+'.join(taps)}", unit="batch", disable=not progress,
                          leave=False):
            images = _images(batch)
            images = images.to(device, non_blocking=True,
                               memory_format=layout if images.dim() == 4 else torch.preserve_format)
            out = model(images, taps=tuple(taps))
            for tap in taps:
                feats = out[tap].reshape(len(images), -1).float().cpu().numpy()
                if tap not in arrays:
                    arrays[tap] = alloc(tap, feats.shape[1])
                arrays[tap][start:start + len(feats)] = feats
            start += len(images)
    return arrays, start - offset


def _memmaps(tmp: dict[str, Path], rows: int) -> Alloc:
    return lambda tap, dim: open_memmap(tmp[tap], mode="w+", dtype=np.float32, shape=(rows, dim))


def _write_all(model: nn.Module, dataset: Dataset, taps: Sequence[str], paths: dict[str, Path], rows: int,
               run: _Run) -> list[int]:
    """One process: every image, into the temporary files, then renamed. Returns [rows done]."""
    loader = run.loader(dataset)
    with contextlib.ExitStack() as stack:
        tmp = {tap: stack.enter_context(atomic_path(paths[tap])) for tap in taps}
        arrays, done = _forward_rows(model, loader, taps, _memmaps(tmp, rows), 0, *run.forward_args)
        if done != rows:
            raise RuntimeError(f"the loader yielded {done} images, the dataset has {rows}")
        for array in arrays.values():
            array.flush()
        arrays.clear()
    return [done]


def _write_sharded(model: nn.Module, dataset: Dataset, taps: Sequence[str], paths: dict[str, Path], rows: int,
                   run: _Run, dist: DistInfo) -> list[int]:
    """Rank r extracts its whole batches `batch_bounds(...)[r]` (the batches of one process, so the
    features are bit-identical to a one-process run); rank 0 writes its rows into the temporary
    memory maps, receives the other ranks' rows per tap at their offsets (`gather_ranges`) and
    renames the files once every rank's rows are in. Returns the rows each rank extracted."""
    bounds = batch_bounds(rows, run.batch_size, dist.world_size)
    begin, end = bounds[dist.rank]
    LOG.info("rank %d/%d extracts images [%d, %d) of %d", dist.rank, dist.world_size, begin, end, rows)
    loader = run.loader(Subset(dataset, range(begin, end)))
    with contextlib.ExitStack() as stack:
        tmp = {tap: stack.enter_context(atomic_path(paths[tap])) for tap in taps} if dist.is_main else {}
        alloc = _memmaps(tmp, rows) if dist.is_main else (
            lambda tap, dim: np.empty((end - begin, dim), dtype=np.float32))
        offset = begin if dist.is_main else 0
        try:
            arrays, done = _forward_rows(model, loader, taps, alloc, offset, *run.forward_args)
            failure = "" if done == end - begin else f"rank {dist.rank} got {done} of {end - begin} images"
        except Exception as err:  # every rank must learn of it, or the others wait in the gather
            arrays, done, failure = {}, 0, f"rank {dist.rank}: {type(err).__name__}: {err}"
        failures = gather_objects(failure, dist)
        if any(failures):
            raise RuntimeError(f"sharded feature extraction failed: {'; '.join(f for f in failures if f)}")
        dims = broadcast_object({tap: arrays[tap].shape[1] for tap in taps} if dist.is_main else None, dist)
        for tap in taps:
            local = arrays.get(tap)
            if local is None:  # a rank without a batch (more ranks than batches)
                local = np.empty((0, dims[tap]), dtype=np.float32)
            elif dist.is_main:
                local = local[begin:end]
            gather_ranges(local, arrays[tap] if dist.is_main else None, bounds, dist)
        for array in arrays.values():
            if isinstance(array, np.memmap):
                array.flush()
        arrays.clear()
        counts = gather_objects(done, dist)
    barrier(dist)
    return [int(c) for c in counts]


def _prepared(net: nn.Module, device: torch.device, channels_last: bool, compile_model: bool) -> nn.Module:
    net = net.to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return torch.compile(net, dynamic=False) if compile_model else net  # type: ignore[return-value]


def _write_meta(path: Path, key: FeatureKey, tap: str, rows: int, images: str, per_rank: list[int]) -> None:
    atomic_write_text(_meta_path(path), json.dumps({"rows": rows, "images": images, "key": {
        "checkpoint_sha256": key.checkpoint_sha256, "dataset": key.dataset, "split": key.split,
        "transform_id": key.transform_id, "precision": key.precision, "tap": tap},
        "rows_per_rank": per_rank}, indent=1) + "\n")


def extract_features(
    model: nn.Module | Callable[[], nn.Module],
    dataset: Dataset,
    taps: Sequence[str],
    cache_dir: Path,
    key: FeatureKey,
    device: torch.device,
    batch_size: int = 32,
    num_workers: int = 0,
    progress: bool = True,
    images: str | None = None,
    channels_last: bool = True,
    compile_model: bool = False,
    dist: DistInfo | None = None,
) -> dict[str, np.ndarray] | None:
    """Features of every image of `dataset` for each tap: {tap: float32 (N, dim)} (memory-mapped).

    `model` is a FeatureTaps-like module called as `model(images, taps=...)` -> {tap: (B, ...)},
    or a zero-argument factory for one (only called when something must be computed; a module
    passed in is moved to `device` and restored to its train/eval mode afterwards). Missing taps
    are computed together in ONE pass (eval mode, inference mode, dataset order). `images` is a
    fingerprint of the image list (see `fingerprint`); a cached file with another one is redone.
    `key.precision` picks fp32 (default) or CUDA bf16 autocast; `channels_last` (default) and
    `compile_model` only change speed (channels_last: float rounding of the convolutions).

    `dist` (dcbench.distributed, world size > 1; call it on every rank): rank 0 decides what is
    missing, each rank extracts its share of whole batches, rank 0 assembles and writes the files
    (bit-identical to one process) and returns the arrays; the other ranks return None. The
    metadata records the images each rank extracted (`rows_per_rank`).
    """
    dist = dist or DistInfo(0, 1, device)
    rows = len(dataset)  # type: ignore[arg-type]
    if rows == 0:
        raise ValueError(f"dataset {key.dataset}/{key.split} is empty; nothing to extract")
    images = images or fingerprint([rows])
    taps = list(dict.fromkeys(taps))
    paths = {tap: key.path(cache_dir, tap) for tap in taps}
    missing = broadcast_object([tap for tap in taps if not _cached(paths[tap], rows, images)]
                               if dist.is_main else None, dist)
    if missing:
        if dist.is_main:
            for folder in sorted({paths[tap].parent for tap in missing}):
                sweep_stale(folder)
        LOG.info("extracting %s for %s/%s (%d images, %d process(es))", missing, key.dataset, key.split, rows,
                 dist.world_size)
        net = model if isinstance(model, nn.Module) else model()
        run = _Run(batch_size, num_workers, device, progress and dist.is_main, channels_last, key.precision)
        prepared = _prepared(net, device, channels_last, compile_model)
        per_rank = (_write_sharded(prepared, dataset, missing, paths, rows, run, dist) if dist.distributed
                    else _write_all(prepared, dataset, missing, paths, rows, run))
        if channels_last and isinstance(model, nn.Module):
            model.to(memory_format=torch.contiguous_format)  # a module passed in gets its layout back
        if dist.is_main:
            for tap in missing:
                _write_meta(paths[tap], key, tap, rows, images, per_rank)
        barrier(dist)  # the files are complete (renamed, with metadata) before any rank goes on
    return {tap: np.load(paths[tap], mmap_mode="r") for tap in taps} if dist.is_main else None
