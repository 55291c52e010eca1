"""Tiny synthetic copies of every dataset layout the benchmarks read (for CI and smoke runs).

`make_tiny(out, seed)` writes, under one root, the same on-disk layouts as the real data
(docs/ARCHITECTURE.md "Data root layout"), small but learnable: each class has its own shape,
colour and texture on a mildly noisy ground.  Output is byte-identical for a given seed and
generator version.  The tree is built in a temporary folder beside `out` and renamed into place
when complete; a complete tree (marker file with the same seed, version and datasets) is reused.
Temporary folders left by a killed maker are recognised by name and removed on the next call.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dcbench.fileio import make_tmp_dir, sweep_stale, tmp_name
from dcbench.tiny.cityscapes import make_cityscapes
from dcbench.tiny.classification import make_imagenet, make_inat18, make_places205
from dcbench.tiny.coco import make_coco
from dcbench.tiny.voc import make_voc2007, make_voc2012

TINY_VERSION = "2"  # 2: VOC2007 trainval 100 -> 2,200 images (low-shot up to k = 96)
MARKER = "DCBENCH_TINY.json"
Generator = Callable[[Path, np.random.Generator], None]
# name -> (folder under the data root, generator)
DATASETS: dict[str, tuple[Path, Generator]] = {
    "imagenet": (Path("imagenet"), make_imagenet),
    "voc2007": (Path("VOCdevkit/VOC2007"), make_voc2007),
    "voc2012": (Path("VOCdevkit/VOC2012"), make_voc2012),
    "coco": (Path("coco"), make_coco),
    "cityscapes": (Path("cityscapes"), make_cityscapes),
    "inat18": (Path("inaturalist2018"), make_inat18),
    "places205": (Path("places205"), make_places205),
}


def dataset_rng(seed: int, name: str) -> np.random.Generator:
    """Independent stream per dataset: adding or changing one leaves the others' bytes alone."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _marker(seed: int, names: Sequence[str]) -> dict[str, object]:
    return {"generator": "dcbench.tiny", "version": TINY_VERSION, "seed": seed, "datasets": sorted(names)}


def _read_marker(out: Path) -> dict[str, object] | None:
    try:
        return json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_complete(out: Path, seed: int = 0, datasets: Sequence[str] | None = None) -> bool:
    """True if `out` holds a finished tiny tree of this version and seed with `datasets`."""
    found = _read_marker(Path(out))
    if found is None:
        return False
    wanted = set(DATASETS if datasets is None else datasets)
    have = found.get("datasets")
    same = found.get("version") == TINY_VERSION and found.get("seed") == seed
    return same and isinstance(have, list) and wanted <= set(have)


def write_tree(root: Path, seed: int, datasets: Sequence[str], progress: bool = False) -> None:
    """Generate `datasets` under the (empty) folder `root`, marker file last. Not atomic by itself."""
    for name in tqdm(datasets, desc="tiny datasets", disable=not progress):
        folder, generate = DATASETS[name]
        (root / folder).mkdir(parents=True, exist_ok=True)
        generate(root / folder, dataset_rng(seed, name))
    (root / MARKER).write_text(json.dumps(_marker(seed, datasets), indent=1) + "\n")


def _refuse_foreign(out: Path) -> None:
    """Never replace a non-empty folder that is not a tiny tree (it may be real data)."""
    if out.exists() and any(out.iterdir()) and _read_marker(out) is None:
        raise FileExistsError(f"{out} exists and is not a dcbench tiny tree (no {MARKER}); not replacing it")


def _install(tmp: Path, out: Path, seed: int, datasets: Sequence[str]) -> None:
    """Rename the finished `tmp` onto `out` (replacing an empty folder or an older tiny tree)."""
    if not out.exists():
        try:
            os.rename(tmp, out)
            return
        except OSError:
            if is_complete(out, seed, datasets):  # a concurrent maker finished first
                return
            raise
    if is_complete(out, seed, datasets):
        return
    _refuse_foreign(out)
    old = out.with_name(tmp_name(out.name))
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old)


def _with_existing(out: Path, seed: int, names: list[str]) -> list[str]:
    """`names` plus the datasets an existing tree of this version and seed already holds."""
    found = _read_marker(out)
    if found is None or found.get("version") != TINY_VERSION or found.get("seed") != seed:
        return names
    have = found.get("datasets")
    extra = [n for n in DATASETS if isinstance(have, list) and n in have and n not in names]
    return names + extra


def make_tiny(
    out: Path, seed: int = 0, datasets: Sequence[str] | None = None, progress: bool = False
) -> Path:
    """Write the tiny data root at `out` (all datasets by default); returns `out`.

    Nothing half-written is ever visible at `out`; an existing complete tree is left untouched.
    """
    out = Path(out)
    names = list(DATASETS) if datasets is None else list(dict.fromkeys(datasets))
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        raise ValueError(f"unknown tiny dataset(s) {unknown}; known: {sorted(DATASETS)}")
    if is_complete(out, seed, names):
        return out
    _refuse_foreign(out)
    names = _with_existing(out, seed, names)
    sweep_stale(out.parent)
    tmp = make_tmp_dir(out)
    try:
        write_tree(tmp, seed, names, progress)
        _install(tmp, out, seed, names)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


__all__ = ["DATASETS", "MARKER", "TINY_VERSION", "dataset_rng", "is_complete", "make_tiny", "write_tree"]
