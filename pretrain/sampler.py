"""Uniform sampling over clusters, with DistributedSampler-style sharding.

Each epoch draws M = int(reassign x N) images (N the dataset size; `reassign` = 1 by default, the
reference's `--reassign`: epochs' worth of training between two re-clusterings).  Every non-empty
cluster contributes the same number of draws, `M // n_nonempty + 1` (with replacement only when the
cluster is smaller than that), the draws are shuffled and truncated to M.  This is the original
DeepCluster rule (facebookresearch/deepcluster util.py `UnifLabelSampler`, sized
`int(args.reassign * len(train_dataset))` in main.py).  MMSelfSup's
`DeepClusterSampler.set_uniform_indices` uses `N // k + 1` per non-empty cluster instead: identical
when no cluster is empty (faiss splits empty clusters, so that is the usual case), but with empty
clusters it draws fewer than N indices and pads the epoch by repeating the same list.  We pick the
original rule on purpose: an epoch is always exactly M fresh draws, uniform over the clusters that exist.

Sharding follows `torch.utils.data.DistributedSampler` (drop_last=False): the global index list
is the same on every rank (seeded by seed and epoch), padded by wrapping to a multiple of the
world size, and rank r takes positions r, r + W, r + 2W, ...
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def samples_per_cluster(num_points: int, num_nonempty: int) -> int:
    return num_points // num_nonempty + 1


def num_draws(num_points: int, reassign: float) -> int:
    """Images drawn per epoch: int(reassign x N), as the reference sizes its sampler (at least 1)."""
    if not reassign > 0:
        raise ValueError(f"reassign must be > 0, got {reassign}")
    return max(1, int(reassign * num_points))


def uniform_cluster_indices(labels: np.ndarray, seed: int, epoch: int, reassign: float = 1.0) -> np.ndarray:
    """int(reassign x N) indices drawn uniformly over the non-empty clusters of `labels`;
    deterministic in (seed, epoch)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise ValueError("cannot sample from an empty assignment")
    n = num_draws(len(labels), reassign)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, 0x5A])))
    order = np.argsort(labels, kind="stable")
    clusters, starts, sizes = np.unique(labels[order], return_index=True, return_counts=True)
    per = samples_per_cluster(n, len(clusters))
    draws = [
        rng.choice(order[start:start + size], per, replace=size < per)
        for start, size in zip(starts, sizes, strict=True)
    ]
    indices = np.concatenate(draws)
    rng.shuffle(indices)
    return indices[:n]


class UniformClusterSampler(Sampler[int]):
    """Per-rank iterator over `uniform_cluster_indices`; call `set_epoch` before each epoch."""

    def __init__(self, labels: np.ndarray | torch.Tensor, seed: int, rank: int = 0,
                 world_size: int = 1, reassign: float = 1.0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.labels = np.asarray(labels, dtype=np.int64).copy()
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.reassign = reassign
        self.epoch = 0
        self.num_samples = math.ceil(num_draws(len(self.labels), reassign) / world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_indices(self) -> np.ndarray:
        indices = uniform_cluster_indices(self.labels, self.seed, self.epoch, self.reassign)
        total = self.num_samples * self.world_size
        if total > len(indices):
            indices = np.resize(indices, total)  # wrap around, as DistributedSampler pads
        return indices

    def __iter__(self) -> Iterator[int]:
        return iter(self.global_indices()[self.rank::self.world_size].tolist())

    def __len__(self) -> int:
        return self.num_samples
