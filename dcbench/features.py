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
host memory and non-blocking copies on CUDA, optional `torch.compile`; each tap's rows are streamed
into its file in order (one sequential write per batch, one fsync) rather than through a fresh
memory map. pretrain.recluster runs the same inner loop (`batch_features`, `prepared_model`).
`precision="bf16"` runs the model under CUDA bfloat16 autocast: a deviation from the reference's
fp32 features, so it is part of the cache key (file name) and recorded in the metadata; the
default stays fp32.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch
from numpy.lib import format as npy_format
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


def batch_features(net: nn.Module, loader: Iterable[object], taps: Sequence[str], device: torch.device,
                   channels_last: bool = True, precision: str = "fp32") -> Iterator[dict[str, np.ndarray]]:
    """Per loader batch, in order: {tap: float32 (B, dim) array} of `net(images, taps=taps)`.

    The one inner extraction loop (the feature cache below and pretrain.recluster use it): each
    batch goes to `device` (channels_last when asked, non-blocking), runs under inference mode and
    the precision's autocast, and comes back as host arrays. `net` is used as given: put it in
    eval mode and its layout first (`prepared_model`). The modes are entered per batch, so the
    caller's code between batches runs outside them.
    """
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for batch in loader:
        images = _images(batch)
        with torch.inference_mode(), _autocast(device, precision):
            images = images.to(device, non_blocking=True,
                               memory_format=layout if images.dim() == 4 else torch.preserve_format)
            out = net(images, taps=tuple(taps))
            feats = {tap: out[tap].reshape(len(images), -1).float().cpu().numpy() for tap in taps}
        yield feats


def _npy_header(fh: IO[bytes], rows: int, dim: int) -> None:
    descr = npy_format.dtype_to_descr(np.dtype(np.float32))
    npy_format.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": (rows, dim)})


def _write_all(net: nn.Module, loader: DataLoader, taps: Sequence[str], paths: dict[str, Path],
               rows: int, device: torch.device, progress: bool, channels_last: bool, precision: str) -> None:
    """Stream each tap's rows, in order, into its .npy (header first: the row count is known), then
    fsync: sequential buffered writes cost a fraction of filling a fresh memory map page by page."""
    with contextlib.ExitStack() as stack:
        tmp = {tap: stack.enter_context(atomic_path(paths[tap])) for tap in taps}
        files = {tap: stack.enter_context(open(tmp[tap], "wb")) for tap in taps}
        start = 0
        bar = tqdm(loader, desc=f"features {'+'.join(taps)}", unit="batch", disable=not progress, leave=False)
        for feats in batch_features(net, bar, taps, device, channels_last, precision):
            count = len(next(iter(feats.values())))
            if start + count > rows:
                raise RuntimeError(f"the loader yielded more than the dataset's {rows} images")
            for tap, block in feats.items():
                if start == 0:
                    _npy_header(files[tap], rows, block.shape[1])
                files[tap].write(np.ascontiguousarray(block, dtype=np.float32).data)
            start += count
        if start != rows:
            raise RuntimeError(f"the loader yielded {start} images, the dataset has {rows}")
        for fh in files.values():
            fh.flush()
            os.fsync(fh.fileno())


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


def _forward_rows(net: nn.Module, loader: DataLoader, taps: Sequence[str], alloc: Alloc, offset: int,
                  run: _Run) -> tuple[dict[str, np.ndarray], int]:
    """`batch_features` over `loader`, each tap's rows written from row `offset` on into
    alloc(tap, dim) (called at the first batch); returns the arrays and the number of images."""
    arrays: dict[str, np.ndarray] = {}
    start = offset
    bar = tqdm(loader, desc=f"features {'+'.join(taps)}", unit="batch", disable=not run.progress, leave=False)
    for feats in batch_features(net, bar, taps, run.device, run.channels_last, run.precision):
        count = len(next(iter(feats.values())))
        for tap, block in feats.items():
            if tap not in arrays:
                arrays[tap] = alloc(tap, block.shape[1])
            arrays[tap][start:start + count] = block
        start += count
    return arrays, start - offset


def _memmaps(tmp: dict[str, Path], rows: int) -> Alloc:
    return lambda tap, dim: npy_format.open_memmap(tmp[tap], mode="w+", dtype=np.float32, shape=(rows, dim))


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
            arrays, done = _forward_rows(model, loader, taps, alloc, offset, run)
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


@contextlib.contextmanager
def prepared_model(model: nn.Module, device: torch.device, channels_last: bool = True,
                   compile_model: bool = False, give_back: bool = True) -> Iterator[nn.Module]:
    """`model` on `device` in eval mode, channels_last and/or `torch.compile`d when asked.

    Afterwards the module has its train/eval mode and (after channels_last, with `give_back`) its
    contiguous layout back; it stays on `device`. Parameters are converted in place, so an
    optimizer holding them keeps working. `give_back=False` skips the layout copy for a model
    nobody uses afterwards.
    """
    with _eval_mode(model.to(device)) as net:
        if channels_last:
            net.to(memory_format=torch.channels_last)
        try:
            yield torch.compile(net, dynamic=False) if compile_model else net  # type: ignore[misc]
        finally:
            if channels_last and give_back:
                net.to(memory_format=torch.contiguous_format)


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
        with prepared_model(net, device, channels_last, compile_model, give_back=net is model) as ready:
            if dist.distributed:
                per_rank = _write_sharded(ready, dataset, missing, paths, rows, run, dist)
            else:
                _write_all(ready, run.loader(dataset), missing, paths, rows, *run.forward_args)
                per_rank = [rows]
        if dist.is_main:
            for tap in missing:
                _write_meta(paths[tap], key, tap, rows, images, per_rank)
        barrier(dist)  # the files are complete (renamed, with metadata) before any rank goes on
    return {tap: np.load(paths[tap], mmap_mode="r") for tap in taps} if dist.is_main else None
