"""Multi-head linear evaluation on the frozen Feature1..5 taps (ImageNet, Places205, iNaturalist2018).

Protocol (MMSelfSup `MultiClsHead`): the backbone stays frozen in eval mode (checked bit for bit
after every epoch, as MoCo's `sanity_check` does); each MultiPooling feature goes through its own
BatchNorm without affine parameters and a Linear layer (normal std 0.01, bias 0); all heads train
together from one backbone forward per batch (the summed cross-entropy); SGD with Nesterov
momentum and a step schedule; the LAST epoch's top-1 / top-5 on val is reported per layer (with
`val_every_epoch`, as the AvgPool probe, val runs after every epoch and the best epoch's top-1 is
recorded too, metrics `top1_best_epoch` / `best_epoch`).

`fit_probe` trains the frozen probes with the shared loop (`evaluators.classification.loop`);
`evaluators.classification.avgpool` uses it with the MoCo AvgPool head. Runs under torchrun
(WORLD_SIZE > 1) or in one process; resumes from `ctx.work_dir / probe_state.pth`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dcbench.backbone import ALL_TAPS, LAYERS, TAP_SPECS, Backbone
from dcbench.config import config_hash, execution_detail, replace
from dcbench.context import RunContext
from dcbench.datasets.common import ImageListDataset
from dcbench.distributed import init_distributed, unwrap, wrap_ddp
from dcbench.optim import split_norm_params
from dcbench.results import Measurement
from evaluators.classification import loop
from evaluators.classification.data import DATASET_DIRS, check_classes, read_split, train_loader, val_loader
from evaluators.classification.state import (
    assert_backbone_unchanged,
    cpu_state,
    freeze,
    load_state,
    save_state,
)
from evaluators.classification.transforms import TRAIN_TRANSFORMS, eval_transform, train_transform

LOG = logging.getLogger(__name__)
AVGPOOL_DIM = TAP_SPECS["feature5"].channels
STATE_FILE = "probe_state.pth"
STATE_FORMAT = "deepcluster-bench/probe/v1"
BEST_TOP1, BEST_EPOCH = "top1_best_epoch", "best_epoch"  # val_every_epoch only: best top-1 over epochs
METRICS = ("top1", "top5", BEST_TOP1, BEST_EPOCH)  # top1 / top5: the last epoch

_MMSELFSUP = "MMSelfSup 1.x configs/benchmarks/classification/"
_HEAD = (
    " + _base_/models/resnet50_multihead.py (MultiClsHead: SyncBN affine=False momentum 0.1, "
    "Linear normal std 0.01)"
)
INTERPOLATION_SOURCE = (
    "interpolation bilinear, as in the run that produced the published DeepCluster numbers: OpenSelfSup "
    "configs/benchmarks/linear_classification/imagenet/r50_multihead_sobel.py and MMSelfSup 0.x "
    "configs/benchmarks/classification/imagenet/resnet50_mhead_linear-8xb32-steplr-90e_in1k.py use "
    "torchvision's RandomResizedCrop / Resize, bilinear by default; MMSelfSup 1.x uses bicubic "
    "(interpolation='bicubic' there)"
)
SOURCE_IMAGENET = (
    _MMSELFSUP + "imagenet/resnet50_mhead_linear-8xb32-steplr-90e_in1k.py" + _HEAD
    + "; train: RandomResizedCrop 224, flip, ColorJitter 0.4/0.4/0.4/0, Lighting; "
    "test: ResizeEdge 256 + CenterCrop 224; batch 32 x 8 GPUs; " + INTERPOLATION_SOURCE
)
SOURCE_PLACES205 = (
    _MMSELFSUP + "places205/resnet50_mhead_8xb32-steplr-28e_places205.py" + _HEAD
    + "; data: _base_/datasets/places205.py (Resize 256, CenterCrop 256, RandomCrop 224, flip / "
    "Resize 256, CenterCrop 224); batch 32 x 8 GPUs"
)
SOURCE_INAT18 = (
    _MMSELFSUP + "inaturalist2018/resnet50_mhead_8xb32-steplr-84e_inat18.py" + _HEAD
    + "; data: _base_/datasets/inaturalist2018.py (RandomResizedCrop 224, flip / Resize 256, "
    "CenterCrop 224); batch 32 x 8 GPUs"
)


@dataclass(frozen=True)
class Config:
    """Reference values for ImageNet; see CONFIGS for Places205 / iNaturalist2018."""

    dataset: str = "imagenet"  # imagenet | inat18 | places205 (selects the reader and the row's dataset)
    num_classes: int | None = 1000  # None: take the class count from the data (tiny data only)
    layers: tuple[str, ...] = LAYERS
    epochs: int = 90
    milestones: tuple[int, ...] = (30, 60, 90)
    gamma: float = 0.1
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    norm_weight_decay: float = 0.0  # paramwise norm_decay_mult=0 (the affine-free BN has no parameters)
    bn_momentum: float = 0.1
    batch_size: int = 256  # total over all processes: 32 per GPU x 8 GPUs
    eval_batch_size: int = 256  # per process (evaluation only)
    train_transform: str = "rrc_flip_jitter_lighting"
    interpolation: str = "bilinear"  # bilinear | bicubic: INTERPOLATION_SOURCE
    crop_size: int = 224
    resize_size: int = 256
    # False: val after the last epoch only ("Top-1 result of the last epoch is reported", OpenSelfSup
    # docs/MODEL_ZOO.md, ImageNet (Multi)); True: val after every epoch, rows add the best epoch's top-1
    val_every_epoch: bool = False
    # gradient accumulation: batches of batch_size / (world size x accum_steps) per forward, accum_steps
    # of them per SGD step (loop.micro_batch); an execution detail, outside the config hash (see README)
    accum_steps: int = execution_detail(1)
    source: str = SOURCE_IMAGENET


CONFIGS: Mapping[str, Config] = {
    "linear_imagenet": Config(),
    "linear_places205": Config(
        dataset="places205", num_classes=205, epochs=28, milestones=(7, 14, 21),
        train_transform="resize_centercrop_randomcrop_flip", interpolation="bilinear",
        source=SOURCE_PLACES205,
    ),
    "linear_inat18": Config(
        dataset="inat18", num_classes=8142, epochs=84, milestones=(24, 48, 72),
        train_transform="rrc_flip", interpolation="bilinear", source=SOURCE_INAT18,
    ),
}


def tiny_config(config: Config) -> Config:
    """Same protocol, CI-sized numbers: 32 px crops, 2 epochs (a milestone at 1), batch 32."""
    return replace(
        config, num_classes=None, epochs=2, milestones=(1,), batch_size=32, eval_batch_size=64,
        crop_size=32, resize_size=36, source=config.source + " [tiny: CI-sized numbers]",
    )


TINY_CONFIGS: Mapping[str, Config] = {name: tiny_config(cfg) for name, cfg in CONFIGS.items()}
TINY = TINY_CONFIGS["linear_imagenet"]


class ProbeHeads(nn.Module):
    """One classifier per tap: BN (affine-free) on the pooled map + Linear; `avgpool` is Linear only."""

    def __init__(self, layers: Sequence[str], num_classes: int, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.layers = tuple(layers)
        self.norms = nn.ModuleDict()
        self.fcs = nn.ModuleDict()
        for name in self.layers:
            if name == "avgpool":
                self.norms[name], dim = nn.Identity(), AVGPOOL_DIM
            else:
                spec = TAP_SPECS[name]
                self.norms[name] = nn.BatchNorm2d(spec.channels, momentum=bn_momentum, affine=False)
                dim = spec.dim
            fc = nn.Linear(dim, num_classes)
            nn.init.normal_(fc.weight, mean=0.0, std=0.01)
            nn.init.zeros_(fc.bias)
            self.fcs[name] = fc

    def forward(self, feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.layers:
            x = feats[name]
            if name != "avgpool":  # BN over channels of the pooled map, as MultiClsHead does
                spec = TAP_SPECS[name]
                x = self.norms[name](x.view(x.shape[0], spec.channels, spec.out_size, spec.out_size))
            out[name] = self.fcs[name](x.flatten(1))
        return out


def validate_config(config: Config) -> None:
    problems = []
    if not config.layers or set(config.layers) - set(ALL_TAPS):
        problems.append(f"layers must be a non-empty subset of {list(ALL_TAPS)}, got {list(config.layers)}")
    if config.dataset not in DATASET_DIRS:
        problems.append(f"dataset must be one of {sorted(DATASET_DIRS)}, got {config.dataset!r}")
    if config.train_transform not in TRAIN_TRANSFORMS:
        problems.append(
            f"train_transform must be one of {TRAIN_TRANSFORMS}, got {config.train_transform!r}"
        )
    if config.epochs < 1 or config.batch_size < 1 or config.eval_batch_size < 1 or config.accum_steps < 1:
        problems.append("epochs, batch_size, eval_batch_size and accum_steps must be positive")
    if list(config.milestones) != sorted(config.milestones):
        problems.append(f"milestones must be increasing, got {list(config.milestones)}")
    if problems:
        raise ValueError(f"bad {type(config).__module__}.Config: " + "; ".join(problems))


def transforms(config: Config) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """(train, eval) image transforms of `config`, with its `interpolation` for every resize."""
    train = train_transform(config.train_transform, config.crop_size, config.resize_size,
                            config.interpolation)
    return train, eval_transform(config.crop_size, config.resize_size, config.interpolation)


def run(backbone: Backbone, data_root: Path, config: Config, ctx: RunContext) -> list[Measurement]:
    """Train the probes of `config.layers` on `config.dataset`: last-epoch top-1/top-5 rows (and, with
    `val_every_epoch`, the best top-1 over the epochs and that epoch)."""
    validate_config(config)
    train_list = read_split(data_root, config.dataset, "train")
    val_list = read_split(data_root, config.dataset, "val")
    num_classes = check_classes(train_list, val_list, config.num_classes)
    train_tf, val_tf = transforms(config)
    train_set = ImageListDataset(train_list.paths, train_list.labels, train_tf)
    val_set = ImageListDataset(val_list.paths, val_list.labels, val_tf)
    metrics = fit_probe(backbone, config, num_classes, train_set, val_set, ctx)
    return [Measurement(dataset=config.dataset, metric=metric, value=metrics[name][metric], layer=name)
            for name in config.layers for metric in METRICS if metric in metrics[name]]


def param_groups(module: nn.Module, lr: float, weight_decay: float, norm_weight_decay: float) -> list[dict]:
    """Two SGD groups: the rest, and norm-layer parameters (own decay, e.g. norm_decay_mult=0)."""
    other, norm = split_norm_params(module)
    groups = [{"params": other, "weight_decay": weight_decay},
              {"params": norm, "weight_decay": norm_weight_decay}]
    return [dict(g, lr=lr, initial_lr=lr) for g in groups if g["params"]]


def fit_probe(
    backbone: Backbone, config: Config, num_classes: int, train_set: torch.utils.data.Dataset,
    val_set: torch.utils.data.Dataset, ctx: RunContext,
) -> dict[str, dict[str, float]]:
    """Train the probes on the frozen backbone (resuming from ctx.work_dir) and evaluate the last epoch."""
    dist = init_distributed(ctx.device)
    taps = freeze(backbone.build_taps()).to(dist.device)
    torch.manual_seed(ctx.seed)
    model = wrap_ddp(ProbeHeads(config.layers, num_classes, config.bn_momentum).to(dist.device), dist)
    heads = unwrap(model)
    optimizer = torch.optim.SGD(
        param_groups(heads, config.lr, config.weight_decay, config.norm_weight_decay),
        lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
    )
    path = ctx.work_dir / STATE_FILE
    key = f"{config_hash(config)}:{backbone.sha256}:{ctx.seed}"
    start, metrics, history = _resume(path, key, heads, optimizer)
    eval_loader = val_loader(val_set, config.eval_batch_size, dist, ctx.num_workers)

    def loss_of(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feats = taps(images, config.layers)
        logits = model(feats)
        return torch.stack([F.cross_entropy(logits[name], target) for name in config.layers]).sum()

    def validate() -> dict[str, dict[str, float]]:
        return loop.evaluate(heads, lambda images: heads(taps(images, config.layers)), config.layers,
                             eval_loader, dist, ctx.progress, "probe eval")

    def after_epoch(done: int, loss: float) -> None:
        assert_backbone_unchanged(taps.resnet, backbone.state_dict)
        if config.val_every_epoch:  # the per-epoch val metrics behind the best-epoch rows
            history.append(validate())
        save_state(path, _state(key, done, heads, optimizer, None, history), dist)

    batch = loop.micro_batch(config.batch_size, dist, config.accum_steps)
    LOG.info("probe batch %d = %d process(es) x %d accumulation step(s) x %d", config.batch_size,
             dist.world_size, config.accum_steps, batch)
    loader = train_loader(train_set, batch, dist, ctx.seed, ctx.num_workers)
    plan = loop.EpochPlan(config.epochs, config.milestones, config.gamma, ctx.seed, f"{config.dataset} probe",
                          ctx.progress, config.accum_steps)
    loop.train_epochs(model, loss_of, optimizer, loader, plan, start, dist, after_epoch)
    if metrics is None:
        done = config.val_every_epoch and len(history) == config.epochs
        last = history[-1] if done else validate()
        metrics = with_best_epoch(last, history) if config.val_every_epoch else last
        save_state(path, _state(key, config.epochs, heads, optimizer, metrics, history), dist)
    return metrics


EpochMetrics = Mapping[str, Mapping[str, float]]  # head -> {"top1": ..., "top5": ...}


def with_best_epoch(last: EpochMetrics, history: Sequence[EpochMetrics]) -> dict[str, dict[str, float]]:
    """The last epoch's metrics plus, per head, the best top-1 over the epochs and its (first) epoch."""
    if not history:
        raise ValueError("no per-epoch validation metrics to take the best epoch from")
    out = {name: dict(values) for name, values in last.items()}
    for name in out:
        top1 = [epoch[name]["top1"] for epoch in history]
        best = max(range(len(top1)), key=lambda i: (top1[i], -i))
        out[name].update({BEST_TOP1: top1[best], BEST_EPOCH: float(best + 1)})
    return out


def _state(key: str, epoch: int, heads: nn.Module, optimizer: torch.optim.Optimizer,
           metrics: dict[str, dict[str, float]] | None, history: list) -> dict[str, object]:
    return {"format": STATE_FORMAT, "key": key, "epoch": epoch, "heads": cpu_state(heads),
            "optimizer": optimizer.state_dict(), "metrics": metrics, "history": history}


def _resume(path: Path, key: str, heads: nn.Module, optimizer: torch.optim.Optimizer,
            ) -> tuple[int, dict[str, dict[str, float]] | None, list]:
    state = load_state(path, key)
    if state is None:
        if path.exists():
            LOG.warning("ignoring %s: it was made for another config, checkpoint or seed", path)
        return 0, None, []
    heads.load_state_dict(state["heads"])
    optimizer.load_state_dict(state["optimizer"])
    LOG.info("resuming probe training from %s after epoch %d", path, state["epoch"])
    return int(state["epoch"]), state.get("metrics"), list(state.get("history", []))
