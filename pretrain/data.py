"""Transforms and data loaders for extraction (deterministic) and training (augmented).

Train augmentation is MMSelfSup 1.x `imagenet_deepcluster.py`: RandomResizedCrop (scale 0.08-1,
ratio 3/4-4/3), flip 0.5, rotation +-2 deg, ColorJitter(0.4, 0.4, 1.0, 0.5) applied always,
RandomGrayscale 0.2 keeping 3 channels, then ImageNet mean/std.  Extraction resizes the shorter
side to `extract_resize` and centre-crops `extract_crop` (torchvision semantics, as the original
DeepCluster `compute_features` loader).  Note: MMSelfSup 1.x writes `Resize(scale=256)`, and
mmcv 2.x `Resize` defaults to keep_ratio=False, i.e. it squashes to 256x256 before the crop; we keep
the aspect ratio on purpose (the original's behaviour; the features only feed the clustering).
The Sobel filter is part of the model, not the transform.

The train loader drops the last incomplete batch: with N % batch_size == 1 the last batch held
one image, and BatchNorm cannot normalise one value per channel (res5 is 1 x 1 at 32 px crops),
so the epoch crashed (found on 1,257 digits at batch 8); a few-image batch also gives the running
statistics a wild update.  ImageNet at 8 x 64 loses at most 63 images of 1.28 M per rank this way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torchvision import transforms as T

from dcbench.datasets.common import ImageList, ImageListDataset
from dcbench.datasets.imagenet import read_imagenet

from .config import PretrainConfig


def train_transform(cfg: PretrainConfig) -> T.Compose:
    b, c, s, h = cfg.color_jitter
    return T.Compose([
        T.RandomResizedCrop(cfg.crop_size, scale=cfg.crop_scale),
        T.RandomHorizontalFlip(cfg.flip_prob),
        T.RandomRotation(cfg.rotation_degrees),
        T.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h),
        T.RandomGrayscale(cfg.grayscale_prob),
        T.ToTensor(),
        T.Normalize(cfg.mean, cfg.std),
    ])


def extract_transform(cfg: PretrainConfig) -> T.Compose:
    return T.Compose([
        T.Resize(cfg.extract_resize),
        T.CenterCrop(cfg.extract_crop),
        T.ToTensor(),
        T.Normalize(cfg.mean, cfg.std),
    ])


def read_train_list(data_root: Path) -> ImageList:
    """The ImageNet train split under `data_root/imagenet` (raises DatasetMissingError if absent)."""
    return read_imagenet(Path(data_root) / "imagenet", "train")


def extract_loader(cfg: PretrainConfig, paths: Sequence[Path], indices: np.ndarray) -> DataLoader:
    """Images `indices` of `paths` in order; the target is the global index."""
    dataset = ImageListDataset([paths[i] for i in indices], [int(i) for i in indices], extract_transform(cfg))
    return DataLoader(dataset, batch_size=cfg.extract_batch_size, shuffle=False,
                      num_workers=cfg.num_workers, pin_memory=torch.cuda.is_available())


def train_loader(cfg: PretrainConfig, paths: Sequence[Path], labels: np.ndarray,
                 sampler: Sampler[int], seed: int) -> DataLoader:
    """Augmented images with their pseudo-labels, in the order the sampler gives."""
    dataset = ImageListDataset(list(paths), [int(x) for x in labels], train_transform(cfg))
    drop_last = len(sampler) >= cfg.batch_size  # a shard smaller than one batch still trains
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                      pin_memory=torch.cuda.is_available(), generator=torch.Generator().manual_seed(seed),
                      drop_last=drop_last)
