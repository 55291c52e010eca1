"""VOC2007 trainval/test labels and cached Feature1..5 for the SVM protocols (full and low-shot).

Extraction pipeline: MMSelfSup 1.x configs/benchmarks/classification/svm_voc07.py
(`mmcls.ResizeEdge(scale=256)` = shorter side to 256, then `Resize(scale=224)` = 224 x 224 without
keeping the aspect ratio; data_preprocessor mean/std of ImageNet in RGB; MultiPooling of
Feature1..5). torchvision's bilinear resize on PIL images stands in for OpenCV's. Under torchrun
the extraction is sharded over the ranks (dcbench.features) and only rank 0 holds the features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T

from dcbench.backbone import IMAGENET_MEAN, IMAGENET_STD, Backbone
from dcbench.context import RunContext
from dcbench.datasets.common import ImageListDataset
from dcbench.datasets.voc import VOC_CLASSES, MultiLabelList, read_voc_cls
from dcbench.distributed import DistInfo, init_distributed
from dcbench.features import FeatureKey, extract_features, fingerprint

TRANSFORM_SOURCE = "MMSelfSup 1.x configs/benchmarks/classification/svm_voc07.py (extract_pipeline)"


@dataclass(frozen=True, eq=False)
class VocFeatures:
    train: dict[str, np.ndarray]  # tap -> (N_trainval, dim) float32
    test: dict[str, np.ndarray]  # tap -> (N_test, dim) float32
    train_labels: np.ndarray  # (N_trainval, 20) int8: 1 positive, -1 negative, 0 difficult
    test_labels: np.ndarray
    train_ids: tuple[str, ...]
    classes: tuple[str, ...] = VOC_CLASSES
    dist: DistInfo = DistInfo(0, 1, torch.device("cpu"))  # the extraction's ranks (features on rank 0 only)


def voc07_transform(resize_edge: int, image_size: int) -> tuple[T.Compose, str]:
    """The extraction transform and its cache id."""
    transform = T.Compose([
        T.Resize(resize_edge),
        T.Resize((image_size, image_size)),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    return transform, f"resizeedge{resize_edge}-resize{image_size}x{image_size}-imnet"


def _split_features(backbone: Backbone, split: MultiLabelList, name: str, layers: Sequence[str],
                    transform: T.Compose, transform_id: str, batch_size: int, ctx: RunContext,
                    precision: str, dist: DistInfo) -> dict[str, np.ndarray]:
    dataset = ImageListDataset(split.paths, split.labels, transform)
    key = FeatureKey(backbone.sha256, "voc07", name, transform_id, precision=precision)
    feats = extract_features(backbone.build_taps, dataset, layers, ctx.cache_dir, key, dist.device,
                             batch_size=batch_size, num_workers=ctx.num_workers, progress=ctx.progress,
                             images=fingerprint(split.image_ids), dist=dist)
    return feats or {}


def load_voc07_features(backbone: Backbone, data_root: Path, layers: Sequence[str], resize_edge: int,
                        image_size: int, batch_size: int, ctx: RunContext, precision: str = "fp32"
                        ) -> VocFeatures:
    """Read VOCdevkit/VOC2007 trainval + test (DatasetMissingError if absent) and their features.

    `precision` (dcbench.features.PRECISIONS): fp32 is the reference; bf16 (CUDA) a recorded deviation.
    Under torchrun every rank calls this: each extracts a share of the images, rank 0 gets the
    features (the other ranks' `train` / `test` are empty; labels and ids are everywhere) and
    solves the SVMs (`dcbench.distributed.on_main` with `dist`).
    """
    dist = init_distributed(ctx.device)
    root = Path(data_root) / "VOCdevkit" / "VOC2007"
    trainval, test = read_voc_cls(root, "trainval"), read_voc_cls(root, "test")
    transform, transform_id = voc07_transform(resize_edge, image_size)
    train = _split_features(backbone, trainval, "trainval", layers, transform, transform_id, batch_size, ctx,
                            precision, dist)
    tested = _split_features(backbone, test, "test", layers, transform, transform_id, batch_size, ctx,
                             precision, dist)
    return VocFeatures(train, tested, trainval.labels, test.labels, trainval.image_ids, dist=dist)
