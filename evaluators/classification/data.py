"""Classification splits and loaders: the dcbench reader of each dataset, the class-count check,
the per-epoch shuffled train loader, the sharded in-order val loader, and per-epoch seeding."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from dcbench.datasets.common import ImageList
from dcbench.datasets.imagenet import read_imagenet
from dcbench.datasets.inat import read_inat18
from dcbench.datasets.places import read_places205
from dcbench.distributed import DistInfo

DATASET_DIRS = {"imagenet": "imagenet", "inat18": "inaturalist2018", "places205": "places205"}


def read_split(data_root: Path, dataset: str, split: str, subset: str | None = None) -> ImageList:
    """Read a classification split with the dcbench reader of `dataset` (raises DatasetMissingError)."""
    if dataset not in DATASET_DIRS:
        raise ValueError(f"unknown classification dataset {dataset!r}; known: {sorted(DATASET_DIRS)}")
    root = Path(data_root) / DATASET_DIRS[dataset]
    if dataset == "imagenet":
        return read_imagenet(root, split, subset)  # type: ignore[arg-type]
    if subset is not None:
        raise ValueError(f"dataset {dataset!r} has no subset {subset!r}")
    reader = read_inat18 if dataset == "inat18" else read_places205
    return reader(root, split)  # type: ignore[arg-type]


def check_classes(train: ImageList, val: ImageList, num_classes: int | None) -> int:
    """The class count: `num_classes` (reference value) checked against the data, or the data's."""
    found = len(train.classes)
    if num_classes is not None and num_classes != found:
        raise ValueError(f"the config expects {num_classes} classes but the training data has {found}")
    if len(val) and int(val.labels.max()) >= found:
        raise ValueError(f"val has label {int(val.labels.max())} but training has only {found} classes")
    return found


def train_loader(dataset: Dataset, batch: int, dist: DistInfo, seed: int, num_workers: int) -> DataLoader:
    """Shuffled loader (a DistributedSampler, also in one process): call `.sampler.set_epoch(epoch)`."""
    sampler = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                 seed=seed, drop_last=False)
    return DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=num_workers,
                      pin_memory=dist.device.type == "cuda", drop_last=False)


def val_loader(dataset: Dataset, batch: int, dist: DistInfo, num_workers: int) -> DataLoader:
    """In-order loader over this rank's shard (rank::world_size): every sample is counted exactly once."""
    shard = Subset(dataset, list(range(dist.rank, len(dataset), dist.world_size)))  # type: ignore[arg-type]
    return DataLoader(shard, batch_size=batch, shuffle=False, num_workers=num_workers,
                      pin_memory=dist.device.type == "cuda")


def seed_epoch(seed: int, epoch: int, dist: DistInfo) -> None:
    """Seed the augmentation RNG per (epoch, rank) so a resumed run draws what a straight run draws."""
    torch.manual_seed(seed * 100_003 + epoch * 1_009 + dist.rank)
