"""Shared training helpers for the linear and fine-tuning evaluators.

Distributed setup (torchrun: WORLD_SIZE > 1, else one process), loaders with per-epoch seeded
shuffling, the step learning-rate schedule, top-k counts summed over ranks, atomic
resumable state files, the frozen-backbone sanity check (after MoCo's `sanity_check`), the
deterministic mode, and the image transforms the reference configs use.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from torchvision import transforms as T

from dcbench.datasets.common import ImageList
from dcbench.datasets.imagenet import read_imagenet
from dcbench.datasets.inat import read_inat18
from dcbench.datasets.places import read_places205
from dcbench.distributed import (  # noqa: F401 - re-exported for the evaluators
    DistInfo,
    barrier,
    init_distributed,
    per_rank_batch,
    reduce_sum,
    unwrap,
    wrap_ddp,
)
from dcbench.fileio import atomic_write

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# AlexNet-style PCA lighting noise, RGB order (MMSelfSup 0.x `Lighting`; 1.x lists the same x255, BGR).
LIGHTING_EIGVAL = (0.2175, 0.0188, 0.0045)
LIGHTING_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
TRAIN_TRANSFORMS = ("rrc_flip", "rrc_flip_jitter_lighting", "resize_centercrop_randomcrop_flip")
DATASET_DIRS = {"imagenet": "imagenet", "inat18": "inaturalist2018", "places205": "places205"}


class BackboneChangedError(RuntimeError):
    """The frozen backbone's weights or buffers changed while training a probe on it."""


# ----------------------------------------------------------------------------- data
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


# ----------------------------------------------------------------------------- transforms
class Lighting(nn.Module):
    """AlexNet PCA lighting noise on a [0, 1] RGB tensor (MMSelfSup `Lighting`, alphastd 0.1)."""

    def __init__(self, alphastd: float = 0.1) -> None:
        super().__init__()
        self.alphastd = alphastd
        self.register_buffer("eigval", torch.tensor(LIGHTING_EIGVAL))
        self.register_buffer("eigvec", torch.tensor(LIGHTING_EIGVEC))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.alphastd == 0:
            return img
        alpha = torch.randn(3) * self.alphastd
        rgb = (self.eigvec * (alpha * self.eigval)[None, :]).sum(1)
        return img + rgb.view(3, 1, 1).to(img.dtype)


def _interp(name: str) -> T.InterpolationMode:
    try:
        return T.InterpolationMode(name)
    except ValueError as err:
        raise ValueError(f"unknown interpolation {name!r}; use 'bilinear' or 'bicubic'") from err


def train_transform(kind: str, crop: int, resize: int, interpolation: str) -> T.Compose:
    """The reference training pipeline `kind` (see TRAIN_TRANSFORMS), ending in ToTensor+Normalize."""
    mode = _interp(interpolation)
    if kind == "resize_centercrop_randomcrop_flip":  # Places205 (MMSelfSup places205 dataset config)
        ops: list[Any] = [T.Resize(resize, interpolation=mode), T.CenterCrop(resize), T.RandomCrop(crop),
                          T.RandomHorizontalFlip()]
    elif kind in ("rrc_flip", "rrc_flip_jitter_lighting"):
        ops = [T.RandomResizedCrop(crop, interpolation=mode), T.RandomHorizontalFlip()]
    else:
        raise ValueError(f"unknown train transform {kind!r}; known: {TRAIN_TRANSFORMS}")
    if kind == "rrc_flip_jitter_lighting":
        ops.append(T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.0))
    ops.append(T.ToTensor())
    if kind == "rrc_flip_jitter_lighting":
        ops.append(Lighting(0.1))
    ops.append(T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return T.Compose(ops)


def eval_transform(crop: int, resize: int, interpolation: str) -> T.Compose:
    """Resize the short side to `resize`, center-crop `crop`, normalize."""
    mode = _interp(interpolation)
    return T.Compose([T.Resize(resize, interpolation=mode), T.CenterCrop(crop), T.ToTensor(),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


# ----------------------------------------------------------------------------- optimisation
def lr_factor(epoch: int, milestones: Sequence[int], gamma: float) -> float:
    """Step schedule (MultiStepLR by epoch / MoCo adjust_learning_rate): gamma ** #milestones <= epoch."""
    return gamma ** sum(epoch >= m for m in milestones)


def set_epoch_lr(
    optimizer: torch.optim.Optimizer, epoch: int, milestones: Sequence[int], gamma: float
) -> None:
    """Set every group's lr from its `initial_lr` for this (0-based) epoch."""
    factor = lr_factor(epoch, milestones, gamma)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))


def param_groups(module: nn.Module, lr: float, weight_decay: float, norm_weight_decay: float) -> list[dict]:
    """Two SGD groups: norm-layer parameters (own decay, e.g. norm_decay_mult=0) and the rest."""
    norm_ids = {id(p) for m in module.modules() if is_norm(m) for p in m.parameters(recurse=False)}
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) not in norm_ids], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in norm_ids], "weight_decay": norm_weight_decay},
    ]
    return [dict(g, lr=lr, initial_lr=lr) for g in groups if g["params"]]


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: Sequence[int] = (1, 5)) -> torch.Tensor:
    """Number of samples whose target is within the top-k predictions, for each k (float tensor)."""
    maxk = min(max(ks), logits.shape[1])
    hits = logits.topk(maxk, dim=1).indices.eq(target[:, None])
    return torch.stack([hits[:, : min(k, maxk)].any(dim=1).sum() for k in ks]).float()


# ----------------------------------------------------------------------------- state + checks
def save_state(path: Path, state: Mapping[str, Any], dist: DistInfo) -> None:
    """Rank 0 writes `state` atomically (torch.save); every rank waits for it."""
    if dist.is_main:
        atomic_write(path, lambda fh: torch.save(dict(state), fh))
    barrier(dist)


def load_state(path: Path, key: str) -> dict[str, Any] | None:
    """The saved state at `path` if it exists and was made for `key` (config + checkpoint); else None."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state if state.get("key") == key else None


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def assert_backbone_unchanged(model: nn.Module, reference: Mapping[str, torch.Tensor]) -> None:
    """Raise BackboneChangedError unless `model`'s state equals `reference` bit for bit."""
    state = model.state_dict()
    if set(state) != set(reference):
        diff = sorted(set(state) ^ set(reference))[:5]
        raise BackboneChangedError(f"frozen backbone keys changed during training, e.g. {diff}")
    changed = [k for k, ref in reference.items()
               if state[k].dtype != ref.dtype or not torch.equal(state[k].detach().cpu(), ref.cpu())]
    if changed:
        raise BackboneChangedError(
            f"frozen backbone changed during linear training: {len(changed)} tensor(s) differ, "
            f"e.g. {changed[:3]} (it must stay in eval mode with no gradient)"
        )


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode, no gradients: the frozen-feature protocol (BN statistics must not move)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@contextlib.contextmanager
def deterministic_mode(enabled: bool = True) -> Iterator[None]:
    """torch deterministic algorithms (warn where none exists) + cuDNN deterministic; restored on exit."""
    if not enabled:
        yield
        return
    prev = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = prev[2], prev[3]
