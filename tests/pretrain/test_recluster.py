from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pretrain.config import TINY
from pretrain.data import read_train_list
from pretrain.distributed import DistInfo
from pretrain.model import DeepClusterModel, build_optimizer
from pretrain.recluster import Images, assignments_path, derive_seed, recluster


def test_derive_seed_is_reproducible_and_distinct() -> None:
    assert derive_seed(0, 3, 1) == derive_seed(0, 3, 1)
    seeds = {derive_seed(s, e, salt, r) for s in (0, 1) for e in (0, 1) for salt in (1, 2) for r in (0, 1)}
    assert len(seeds) == 16 and all(0 <= s < 2**31 for s in seeds)


def test_recluster_assigns_saves_and_resets_head(tiny_root: Path, tmp_path: Path) -> None:
    listing = read_train_list(tiny_root)
    images = Images(listing.paths, listing.labels)
    torch.manual_seed(0)
    model = DeepClusterModel(TINY.num_clusters, sobel=False)
    opt = build_optimizer(model, 0.1, 0.9, 0.0, 1e-5)
    opt.state[model.head.weight]["momentum_buffer"] = torch.ones_like(model.head.weight)
    model.train()
    labels, record = recluster(model, opt, TINY, images, DistInfo(0, 1, torch.device("cpu")),
                               epoch=3, previous=np.zeros(40, dtype=np.int64), work_dir=tmp_path)
    assert model.training  # extraction ran in eval mode and restored the mode
    assert labels.shape == (40,) and labels.dtype == np.int64
    np.testing.assert_array_equal(np.load(assignments_path(tmp_path, 3)), labels)
    assert record["num_images"] == 40 and record["kmeans_backend"] == "faiss-cpu"
    assert record["empty_clusters"] + len(np.unique(labels)) == TINY.num_clusters
    assert record["nmi_prev"] == 0.0 and 0.0 < record["nmi_gt"] <= 1.0
    assert model.head.bias.abs().sum() == 0 and model.head.weight not in opt.state
