"""DeepCluster pretraining configs: frozen dataclasses with the reference values and their sources.

Sources (facts only, no code copied):
- MMSelfSup 1.x `configs/selfsup/deepcluster/deepcluster_resnet50_8xb64-steplr-200e_in1k.py`:
  SGD lr 0.1, momentum 0.9, weight decay 1e-5, head momentum 0 (paramwise `custom_keys={'head':
  dict(momentum=0.)}`), MultiStepLR milestones [400] gamma 0.1 over 200 epochs (i.e. a constant lr),
  checkpoint interval 10 keeping the last 3.
- MMSelfSup 1.x `configs/selfsup/_base_/datasets/imagenet_deepcluster.py`: batch 64 per GPU x 8 GPUs,
  train pipeline RandomResizedCrop 224, RandomFlip 0.5, RandomRotation 2 deg, ColorJitter
  (0.4, 0.4, 1.0, 0.5), RandomGrayscale 0.2 (keep channels); extraction Resize 256 / CenterCrop 224,
  batch 128; DeepClusterHook Kmeans k=10000, pca_dim=256, uniform sampling on, re-weighting off,
  clustering before training (`initial=True`) and after every epoch (`interval=1`).
- MMSelfSup 1.x `configs/selfsup/_base_/models/deepcluster.py`: ResNet-50 (BN), AvgPool neck,
  ClsHead Linear(2048, 10000).  `-sobel` variant: `with_sobel=True`, backbone in_channels=2.
- MMSelfSup `mmselfsup/utils/clustering.py` and facebookresearch/deepcluster `clustering.py`:
  faiss PCAMatrix(eigen_power=-0.5) to 256 dims, L2 row normalisation, faiss k-means 20 iterations,
  `max_points_per_centroid=10000000` (all points), a new seed per clustering.
- facebookresearch/deepcluster `main.py`: top layer re-initialised normal(0, 0.01), bias 0, at
  every clustering; ImageNet mean/std normalisation; the Sobel input applied after normalisation.
- `conv_init` (trunk convolutions, see pretrain/model.py): "kaiming_fan_in" = OpenSelfSup
  (MMSelfSup branch `openselfsup`) `openselfsup/models/backbones/resnet.py` `init_weights`, which
  calls `kaiming_init(m, mode='fan_in', nonlinearity='relu')` on every Conv2d (mmcv `kaiming_init`
  otherwise defaults to mode='fan_out', normal distribution, bias 0) and `constant_init(bn, 1)`;
  that code trained the published DeepCluster checkpoint, so it is the default.
  "kaiming_fan_out" = torchvision `resnet50()` (`kaiming_normal_(mode='fan_out', nonlinearity='relu')`).

Loss: plain mean cross-entropy over the pseudo-labels (original DeepCluster; MMSelfSup 0.x).  As far
as we read it, MMSelfSup 1.x's `DeepCluster` hands a uniform `class_weight` of 1/k to mmcls
`CrossEntropyLoss`, whose per-sample weighting followed by a plain mean scales the loss (and the
gradients) by 1/k; we do not reproduce that scaling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dcbench.config import ConfigError, from_dict, replace, to_dict
from dcbench.optim import step_factor

KMEANS_BACKENDS = ("auto", "faiss", "torch")
CONV_INITS = ("kaiming_fan_in", "kaiming_fan_out")  # pretrain.model.CONV_INITS
# Trunks the pretrainer builds (torchvision, fc removed) and their avgpool width.  Only resnet50
# checkpoints feed the evaluators (adapters refuse the others); resnet18 is for the learning check.
ARCHS: dict[str, int] = {"resnet50": 2048, "resnet18": 512}


@dataclass(frozen=True)
class PretrainConfig:
    name: str = "deepcluster_resnet50_8xb64-steplr-200e_in1k"
    source: str = "MMSelfSup 1.x configs/selfsup/deepcluster (see pretrain/config.py docstring)"
    arch: str = "resnet50"  # the reference; "resnet18" only for benchmarks/learning_check.py (ARCHS)
    sobel: bool = False  # MMSelfSup `with_sobel`; the -sobel config sets it
    conv_init: str = "kaiming_fan_in"  # OpenSelfSup ResNet.init_weights; torchvision: kaiming_fan_out
    # clustering (DeepClusterHook + clustering.Kmeans)
    num_clusters: int = 10000
    pca_dim: int = 256
    kmeans_iters: int = 20
    # "auto": faiss-gpu if importable with a GPU, else torch k-means on CUDA, else faiss-cpu.
    kmeans_backend: str = "auto"
    extract_batch_size: int = 128
    extract_resize: int = 256
    extract_crop: int = 224
    # speed only (dcbench.features): NHWC convolutions change float rounding, not the protocol
    extract_channels_last: bool = True
    extract_compile: bool = False
    # optimisation (8 GPUs x 64 = 512 images per step in the reference)
    epochs: int = 200
    batch_size: int = 64  # per process
    lr: float = 0.1
    momentum: float = 0.9
    head_momentum: float = 0.0
    weight_decay: float = 1e-5
    lr_milestones: tuple[int, ...] = (400,)  # beyond 200 epochs: constant lr, as the reference
    lr_gamma: float = 0.1
    head_init_std: float = 0.01
    head_lr_mult: float = 1.0  # the head's lr = lr * head_lr_mult; the reference has none (1)
    # epochs' worth of images drawn between two clusterings: facebookresearch/deepcluster main.py
    # `--reassign` (default 1; its sampler draws int(reassign * N)); MMSelfSup 1.x: 1 (its
    # DeepClusterHook `interval=1` re-clusters after every epoch of N images)
    reassign: float = 1.0
    # train augmentation (MMSelfSup 1.x imagenet_deepcluster.py)
    crop_size: int = 224
    crop_scale: tuple[float, float] = (0.08, 1.0)  # RandomResizedCrop's default area range (the reference's)
    flip_prob: float = 0.5
    rotation_degrees: float = 2.0
    color_jitter: tuple[float, float, float, float] = (0.4, 0.4, 1.0, 0.5)
    grayscale_prob: float = 0.2
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    # runtime
    seed: int = 0
    num_workers: int = 4
    checkpoint_interval: int = 10
    max_keep_checkpoints: int = 3
    progress: bool = True

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {sorted(ARCHS)}, got {self.arch!r}")
        if self.conv_init not in CONV_INITS:
            raise ConfigError(f"conv_init must be one of {CONV_INITS}, got {self.conv_init!r}")
        if self.kmeans_backend not in KMEANS_BACKENDS:
            raise ConfigError(f"kmeans_backend must be one of {KMEANS_BACKENDS}, got {self.kmeans_backend!r}")
        for key in ("head_lr_mult", "reassign"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)}")
        for key in ("num_clusters", "pca_dim", "kmeans_iters", "epochs", "batch_size",
                    "extract_batch_size", "checkpoint_interval", "max_keep_checkpoints"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ConfigError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if self.extract_crop > self.extract_resize:
            raise ConfigError("extract_crop must not exceed extract_resize")


DEEPCLUSTER_R50 = PretrainConfig()
DEEPCLUSTER_SOBEL_R50 = PretrainConfig(
    name="deepcluster-sobel_resnet50_8xb64-steplr-200e_in1k",
    source="MMSelfSup 1.x configs/selfsup/deepcluster/deepcluster-sobel_resnet50_8xb64-steplr-200e_in1k.py",
    sobel=True,
)
TINY_NOTE = """CI-sized: a pipeline check, not a model.  Same algorithm (k-means on PCA-whitened, L2-normed
avgpool features, uniform sampling over clusters, head re-initialised every epoch), scaled down:
k=10 (10 tiny classes), PCA to 4 dims (k=10 clusters lie along the few directions of largest
variance; with 16 whitened dims the NMI with the classes fell over the epochs), 32 px crops
(extraction resize 36 / crop 32), batch 8, 3 epochs, no workers, and these deviations, each
measured (loss = the epoch's mean training loss; ln k = 2.303):
- reassign 2.5 (the original DeepCluster's `--reassign`; the reference configs' value is 1): each epoch
  draws 600 images (75 steps) from the 240 before the next clustering, because the first epoch's
  labels come from the random init, whose features the net barely sees in training (below), and
  30 steps do not fit them: with reassign 1 (4 epochs) the losses were 2.41, 2.27, 2.08, 1.94, and
  within epoch 1 the mean per quarter of its steps stayed at 2.44, 2.39, 2.38, 2.42; reassign 2
  gave 2.32, 1.90, 1.69, 1.68, reassign 3 (3 epochs) 2.16, 1.59, 1.61;
- head_init_std 0.001 (reference 0.01): the train-mode avgpool features have |f| ~ 70 at 32 px, so an
  N(0, 0.01) head starts with logits of std ~0.7, i.e. at ln k + 0.7^2 / 2 ~ 2.55, above ln k before
  the first step;
- lr 0.01 for the trunk and head_lr_mult 0.15 (head lr 0.0015; reference 0.1 for both at 512 images
  per step, linear scaling would give 0.0016): per step the head moves a cluster's logit by about
  lr x (its share of the batch - its predicted share) x |f|^2 ~ lr x 0.1 x 5,000, so at batch 8 over
  10 clusters a head lr above ~0.002 random-walks the logits (trunk and head at 0.005: 3.3) while the
  trunk needs the larger lr to fit labels within an epoch (at 0.0016 the loss stays at 2.5);
- no colour jitter, grayscale or rotation, RandomResizedCrop scale (0.8, 1) (reference jitter
  (0.4, 0.4, 1.0, 0.5), grayscale 0.2, rotation 2 deg, scale (0.08, 1)): the clusters of the random
  init follow background tone and colour, which those augmentations re-draw, so the trunk cannot fit
  them: the epoch-0 labels fitted for 90 steps (mean per sixth) stay at 2.54 ... 2.51 with the
  reference augmentations, and go 2.47 -> 2.16 without them (2.37 -> 1.97 with the head init and
  lrs above).
Diagnosis of the loss above ln k with the earlier tiny settings (lr 0.0016 for both, head init 0.01,
reference augmentations less hue / saturation, reassign 1: 2.54 / 2.61, NMI with the classes 0.235
-> 0.322 -> 0.312): the three causes above, plus that the first epoch's labels are barely
predictable from what the net trains on: at init a linear probe (4-fold CV) predicts the epoch-0
pseudo-labels at 75 % from the eval-mode features of the extraction view (BatchNorm running
statistics still (0, 1): |f| ~ 3,700), at 15 % from train-mode (batch-8 BatchNorm) features of the
same view and at 11 % from train-mode features of augmented crops (chance 10 %).  Tried for epoch 1
at reassign 1 and no better than 2.35: a BatchNorm-statistics pass over the data before the first
clustering (2.41), 64 px crops (2.41, 4x the time), batch 4 (2.35), trunk lr 0.02 (2.39).
This config: losses 2.19, 1.81, 1.61 (every epoch below ln k); NMI with the classes 0.235 -> 0.427
-> 0.542 -> 0.551; NMI with the previous assignment 0.33 -> 0.67 -> 0.72
(tests/pretrain/test_learning.py pins this).
See benchmarks/learning_check.py for whether DeepCluster learns on real data."""
_SCALED_DOWN = PretrainConfig(  # what TINY and SMALL_DATA share: the reference at CI size
    num_clusters=10,
    pca_dim=4,
    extract_batch_size=16,
    extract_resize=36,
    extract_crop=32,
    batch_size=8,
    crop_size=32,
    num_workers=0,
    checkpoint_interval=1,
    progress=False,
)
TINY = replace(
    _SCALED_DOWN,
    name="tiny",
    source="CI-sized variant of deepcluster_resnet50_8xb64-steplr-200e_in1k; deviations and why: "
           "pretrain/config.py TINY_NOTE",
    epochs=3,
    reassign=2.5,
    lr=0.01,
    head_lr_mult=0.15,
    head_init_std=0.001,
    crop_scale=(0.8, 1.0),
    rotation_degrees=0.0,
    color_jitter=(0.0, 0.0, 0.0, 0.0),
    grayscale_prob=0.0,
)
# Small-data settings for real images at a few thousand images (benchmarks/learning_check.py).
SMALL_DATA = replace(
    _SCALED_DOWN,
    name="small-data",
    source="small-data variant of deepcluster_resnet50_8xb64-steplr-200e_in1k (see the TINY note)",
    pca_dim=16,
    batch_size=16,
    lr=0.1 * 16 / 512,  # the reference lr scaled linearly from 512 to 16 images per step
    color_jitter=(0.4, 0.4, 0.0, 0.0),  # no hue / saturation jitter (the reference: 1.0 / 0.5)
    epochs=6,
)
TINY_SOBEL = replace(TINY, name="tiny-sobel", sobel=True,
                     source="CI-sized variant of deepcluster-sobel_resnet50_8xb64-steplr-200e_in1k")

CONFIGS: dict[str, PretrainConfig] = {
    c.name: c for c in (DEEPCLUSTER_R50, DEEPCLUSTER_SOBEL_R50, TINY, TINY_SOBEL, SMALL_DATA)
}


def load_config(spec: str) -> PretrainConfig:
    """A named config, a JSON object string, or a path to a .json file.

    JSON may name a `base` config (default: the non-Sobel reference) and override any field.
    """
    if spec in CONFIGS:
        return CONFIGS[spec]
    text = spec
    if not spec.lstrip().startswith("{"):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"unknown pretrain config {spec!r}: not one of {sorted(CONFIGS)}, "
                              "not a JSON object and not a .json file")
        text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"pretrain config {spec!r} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"pretrain config JSON must be an object, got {type(data).__name__}")
    base_name = data.pop("base", DEEPCLUSTER_R50.name)
    if base_name not in CONFIGS:
        raise ConfigError(f"unknown base config {base_name!r}; known: {sorted(CONFIGS)}")
    merged = {**to_dict(CONFIGS[base_name]), **data}
    return from_dict(PretrainConfig, merged)


def feat_dim(cfg: PretrainConfig) -> int:
    """Width of the avgpool features that are clustered and fed to the head."""
    return ARCHS[cfg.arch]


def lr_at(cfg: PretrainConfig, epoch: int) -> float:
    """MultiStepLR by epoch: lr * gamma ** (milestones passed). `epoch` counts from 0."""
    return cfg.lr * step_factor(epoch, cfg.lr_milestones, cfg.lr_gamma)
