from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pretrain.config import TINY
from pretrain.data import extract_loader, read_train_list, train_loader
from pretrain.sampler import UniformClusterSampler


def test_loaders_shapes_targets_and_order(tiny_root: Path) -> None:
    listing = read_train_list(tiny_root)
    assert len(listing.paths) == 40 and listing.labels.max() == 3
    idx = np.array([5, 1, 30])
    x, target = next(iter(extract_loader(TINY, listing.paths, idx)))
    assert x.shape == (3, 3, 32, 32) and target.tolist() == [5, 1, 30]
    labels = np.arange(40) % 10
    sampler = UniformClusterSampler(labels, seed=0)
    loader = train_loader(TINY, listing.paths, labels, sampler, seed=0)
    order = list(sampler)
    x, y = next(iter(loader))
    assert x.shape == (8, 3, 32, 32) and y.tolist() == labels[order[:8]].tolist()
    torch.manual_seed(0)
    a = next(iter(train_loader(TINY, listing.paths, labels, sampler, seed=0)))[0]
    torch.manual_seed(0)
    b = next(iter(train_loader(TINY, listing.paths, labels, sampler, seed=0)))[0]
    torch.testing.assert_close(a, b)  # augmentation is reproducible under a fixed seed


def test_train_loader_drops_a_last_batch_of_one(tiny_root: Path) -> None:
    listing = read_train_list(tiny_root)
    paths, labels = listing.paths[:33], np.arange(33) % 4  # 33 = 4 x 8 + 1
    batches = [len(y) for _, y in train_loader(TINY, paths, labels, UniformClusterSampler(labels, 0), seed=0)]
    assert batches == [8, 8, 8, 8]  # a batch of 1 image cannot pass BatchNorm in train mode
