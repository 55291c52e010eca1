"""One DeepCluster re-assignment: extract features (sharded over ranks), cluster on rank 0,
broadcast the labels, re-initialise and broadcast the head, reset its momentum."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dcbench.features import batch_features, prepared_model
from dcbench.fileio import atomic_write

from . import distributed as D
from .cluster import cluster_features
from .config import PretrainConfig
from .data import extract_loader
from .metrics import cluster_stats, nmi
from .model import DeepClusterModel, reset_head_momentum

SALT_KMEANS = 1
SALT_HEAD = 2
SALT_TRAIN = 3
TAP = "avgpool"  # res5 -> global average pool, what DeepCluster clusters


def derive_seed(seed: int, epoch: int, salt: int, rank: int = 0) -> int:
    """A reproducible 31-bit seed for (run seed, epoch, purpose, rank)."""
    state = np.random.SeedSequence([seed, epoch, salt, rank]).generate_state(1)[0]
    return int(state) % (2**31 - 1)


def assignments_path(work_dir: Path, epoch: int) -> Path:
    return Path(work_dir) / "assignments" / f"epoch_{epoch:04d}.npy"


@dataclass(frozen=True)
class Images:
    paths: tuple[Path, ...]
    gt_labels: np.ndarray | None  # ground-truth classes when the dataset has them


class _AvgPoolTap(nn.Module):
    """The model's clustered features as the shared extraction loop's one tap, 'avgpool'."""

    def __init__(self, model: DeepClusterModel) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)  # prepared_model restores this mode to the model afterwards

    def forward(self, x: torch.Tensor, taps: tuple[str, ...] = (TAP,)) -> dict[str, torch.Tensor]:
        return {TAP: self.model.features(x)}


def extract_features(model: DeepClusterModel, cfg: PretrainConfig, images: Images,
                     info: D.DistInfo) -> np.ndarray | None:
    """avgpool features (2048-d; 512-d for ResNet-18) of every image in eval mode; full array on rank 0,
    None elsewhere.

    Runs dcbench.features' extraction loop (inference mode; channels_last and torch.compile per
    `cfg.extract_channels_last` / `cfg.extract_compile`), so the pretrainer gets the evaluators'
    speed-ups; without channels_last the features are bit-identical to `model.features` in eval
    mode, with it they differ by the convolutions' float rounding.
    """
    shard = D.shard_indices(len(images.paths), info)
    loader = extract_loader(cfg, images.paths, shard)
    bar = tqdm(loader, desc="extract", disable=not (cfg.progress and info.is_main), leave=False)
    with prepared_model(_AvgPoolTap(model), info.device, cfg.extract_channels_last,
                        cfg.extract_compile) as net:
        chunks = [torch.from_numpy(feats[TAP]) for feats in
                  batch_features(net, bar, (TAP,), info.device, cfg.extract_channels_last)]
    return D.gather_rows(torch.cat(chunks), len(images.paths), info)


def recluster(model: DeepClusterModel, optimizer: torch.optim.Optimizer, cfg: PretrainConfig,
              images: Images, info: D.DistInfo, epoch: int, previous: np.ndarray | None,
              work_dir: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """New assignments (same on every rank) and, on rank 0, the log fields of this clustering.

    `epoch` is the number of completed training epochs (0 = the initial clustering).
    """
    t0 = time.perf_counter()
    features = extract_features(model, cfg, images, info)
    t1 = time.perf_counter()
    record: dict[str, Any] = {"num_images": len(images.paths), "extraction_time_s": t1 - t0}
    labels = None
    if info.is_main:
        assert features is not None
        result = cluster_features(features, cfg.num_clusters, cfg.pca_dim, cfg.kmeans_iters,
                                  derive_seed(cfg.seed, epoch, SALT_KMEANS), cfg.kmeans_backend)
        labels = result.labels
        record.update({
            "clustering_time_s": time.perf_counter() - t1,
            "kmeans_objective": result.objective,
            "kmeans_backend": result.backend,
            **cluster_stats(labels, cfg.num_clusters),
            "nmi_prev": nmi(previous, labels),
            "nmi_gt": nmi(images.gt_labels, labels),
        })
        save_assignments(assignments_path(work_dir, epoch), labels)
    labels = D.broadcast_labels(labels, len(images.paths), info)
    model.reset_head(cfg.head_init_std, derive_seed(cfg.seed, epoch, SALT_HEAD))
    D.broadcast_module(model.head, info)
    reset_head_momentum(optimizer, model.head)
    record["assignment_digests"] = D.gather_digests(D.digest(labels), info)
    record["head_digests"] = D.gather_digests(D.digest(model.head.weight, model.head.bias), info)
    if len(set(record["assignment_digests"])) != 1 or len(set(record["head_digests"])) != 1:
        raise RuntimeError(f"ranks disagree after re-clustering: {record}")
    return labels, record


def save_assignments(path: Path, labels: np.ndarray) -> None:
    atomic_write(path, lambda fh: np.save(fh, np.asarray(labels, dtype=np.int64)))
