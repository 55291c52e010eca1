"""Cached frozen-feature extraction: one pass over the images for every requested tap.

Cache layout: `cache_dir/<checkpoint sha256>/<dataset>/<split>/<tap>__<transform id>.npy`
(float32, one row per image in dataset order) plus `<tap>__<transform id>.json` recording the
row count and the image-list fingerprint. Files are written atomically (dcbench.fileio), so an
interrupted run leaves nothing that looks complete; the temporary files of a killed run are
removed by the next extraction into the same folder. A later call with the same key and images
loads the arrays (memory-mapped) without building or running the model.

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
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

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
) -> dict[str, np.ndarray]:
    """Features of every image of `dataset` for each tap: {tap: float32 (N, dim)} (memory-mapped).

    `model` is a FeatureTaps-like module called as `model(images, taps=...)` -> {tap: (B, ...)},
    or a zero-argument factory for one (only called when something must be computed; a module
    passed in is moved to `device` and restored to its train/eval mode afterwards). Missing taps
    are computed together in ONE pass (eval mode, inference mode, dataset order). `images` is a
    fingerprint of the image list (see `fingerprint`); a cached file with another one is redone.
    `key.precision` picks fp32 (default) or CUDA bf16 autocast; `channels_last` (default) and
    `compile_model` only change speed (channels_last: float rounding of the convolutions).
    """
    rows = len(dataset)  # type: ignore[arg-type]
    if rows == 0:
        raise ValueError(f"dataset {key.dataset}/{key.split} is empty; nothing to extract")
    images = images or fingerprint([rows])
    taps = list(dict.fromkeys(taps))
    paths = {tap: key.path(cache_dir, tap) for tap in taps}
    missing = [tap for tap in taps if not _cached(paths[tap], rows, images)]
    if missing:
        for folder in sorted({paths[tap].parent for tap in missing}):
            sweep_stale(folder)
        LOG.info("extracting %s for %s/%s (%d images)", missing, key.dataset, key.split, rows)
        net = model if isinstance(model, nn.Module) else model()
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                            pin_memory=device.type == "cuda")
        with prepared_model(net, device, channels_last, compile_model, give_back=net is model) as ready:
            _write_all(ready, loader, missing, paths, rows, device, progress, channels_last, key.precision)
        for tap in missing:
            atomic_write_text(_meta_path(paths[tap]), json.dumps({"rows": rows, "images": images, "key": {
                "checkpoint_sha256": key.checkpoint_sha256, "dataset": key.dataset, "split": key.split,
                "transform_id": key.transform_id, "precision": key.precision, "tap": tap}}, indent=1) + "\n")
    return {tap: np.load(paths[tap], mmap_mode="r") for tap in taps}
