from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dcbench.config import replace
from pretrain.config import TINY, PretrainConfig
from pretrain.data import extract_loader, read_train_list
from pretrain.distributed import DistInfo
from pretrain.model import DeepClusterModel, build_optimizer
from pretrain.recluster import Images, assignments_path, derive_seed, extract_features, recluster


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


def _old_loop(model: DeepClusterModel, cfg: PretrainConfig, images: Images) -> np.ndarray:
    """The pretrainer's own loop before it used dcbench.features: eval mode, no_grad, NCHW."""
    loader = extract_loader(cfg, images.paths, np.arange(len(images.paths)))
    model.eval()
    with torch.no_grad():
        feats = torch.cat([model.features(x).float() for x, _ in loader]).numpy()
    model.train()
    return feats


def test_extraction_runs_the_shared_loop_with_the_old_features(tiny_root: Path) -> None:
    listing = read_train_list(tiny_root)
    images = Images(listing.paths[:12], None)
    cfg = replace(TINY, extract_batch_size=5)  # a last incomplete batch too
    torch.manual_seed(0)
    model = DeepClusterModel(TINY.num_clusters, sobel=True)
    model.train()
    reference = _old_loop(model, cfg, images)
    info = DistInfo(0, 1, torch.device("cpu"))
    nchw = extract_features(model, replace(cfg, extract_channels_last=False), images, info)
    np.testing.assert_array_equal(nchw, reference)  # same features, bit for bit
    fast = extract_features(model, cfg, images, info)  # the default: channels_last
    assert fast is not None and fast.shape == (12, 2048) and fast.dtype == np.float32
    scale = np.abs(reference).max()  # NHWC convolutions round differently; relative to the features' scale:
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-5 * scale)  # measured 1.5e-6 * scale
    assert model.training and model.trunk.conv1.weight.is_contiguous()  # mode and layout given back
    model.eval()
    extract_features(model, cfg, images, info)
    assert not model.training  # an eval-mode model stays in eval mode
