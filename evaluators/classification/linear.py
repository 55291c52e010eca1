"""Multi-head linear evaluation on the frozen Feature1..5 taps (ImageNet, Places205, iNaturalist2018).

Protocol (MMSelfSup `MultiClsHead`): the backbone stays frozen in eval mode (checked bit for bit
after every epoch, as MoCo's `sanity_check` does); each MultiPooling feature goes through its own
BatchNorm without affine parameters and a Linear layer (normal std 0.01, bias 0); all heads train
together from one backbone forward per batch (the summed cross-entropy); SGD with Nesterov
momentum and a step schedule; the LAST epoch's top-1 / top-5 on val is reported per layer.

`fit_probe` is the shared frozen-probe loop; `evaluators.classification.avgpool` uses it with the MoCo
AvgPool head. Runs under torchrun (WORLD_SIZE > 1) or in one process; resumes from
`ctx.work_dir / probe_state.pth`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from dcbench.backbone import ALL_TAPS, LAYERS, TAP_SPECS, Backbone, FeatureTaps
from dcbench.config import config_hash, replace
from dcbench.context import RunContext
from dcbench.datasets.common import ImageListDataset
from dcbench.results import Measurement
from evaluators.classification import train_utils as tu

LOG = logging.getLogger("deepcluster_bench")
AVGPOOL_DIM = TAP_SPECS["feature5"].channels
STATE_FILE = "probe_state.pth"
STATE_FORMAT = "deepcluster-bench/probe/v1"

_MMSELFSUP = "MMSelfSup 1.x configs/benchmarks/classification/"
_HEAD = (
    " + _base_/models/resnet50_multihead.py (MultiClsHead: SyncBN affine=False momentum 0.1, "
    "Linear normal std 0.01)"
)
SOURCE_IMAGENET = (
    _MMSELFSUP + "imagenet/resnet50_mhead_linear-8xb32-steplr-90e_in1k.py" + _HEAD
    + "; train: RandomResizedCrop 224 bicubic, flip, ColorJitter 0.4/0.4/0.4/0, Lighting; "
    "test: ResizeEdge 256 bicubic + CenterCrop 224; batch 32 x 8 GPUs"
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
    interpolation: str = "bicubic"
    crop_size: int = 224
    resize_size: int = 256
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
    if config.dataset not in tu.DATASET_DIRS:
        problems.append(f"dataset must be one of {sorted(tu.DATASET_DIRS)}, got {config.dataset!r}")
    if config.train_transform not in tu.TRAIN_TRANSFORMS:
        problems.append(
            f"train_transform must be one of {tu.TRAIN_TRANSFORMS}, got {config.train_transform!r}"
        )
    if config.epochs < 1 or config.batch_size < 1 or config.eval_batch_size < 1:
        problems.append("epochs, batch_size and eval_batch_size must be positive")
    if list(config.milestones) != sorted(config.milestones):
        problems.append(f"milestones must be increasing, got {list(config.milestones)}")
    if problems:
        raise ValueError(f"bad {type(config).__module__}.Config: " + "; ".join(problems))


def run(backbone: Backbone, data_root: Path, config: Config, ctx: RunContext) -> list[Measurement]:
    """Train the probes of `config.layers` on `config.dataset` and return last-epoch top-1/top-5 rows."""
    validate_config(config)
    train_list = tu.read_split(data_root, config.dataset, "train")
    val_list = tu.read_split(data_root, config.dataset, "val")
    num_classes = tu.check_classes(train_list, val_list, config.num_classes)
    train_set = ImageListDataset(train_list.paths, train_list.labels, tu.train_transform(
        config.train_transform, config.crop_size, config.resize_size, config.interpolation))
    val_set = ImageListDataset(val_list.paths, val_list.labels, tu.eval_transform(
        config.crop_size, config.resize_size, config.interpolation))
    metrics = fit_probe(backbone, config, num_classes, train_set, val_set, ctx)
    return [Measurement(dataset=config.dataset, metric=metric, value=metrics[name][metric], layer=name)
            for name in config.layers for metric in ("top1", "top5")]


def fit_probe(
    backbone: Backbone, config: Config, num_classes: int, train_set: torch.utils.data.Dataset,
    val_set: torch.utils.data.Dataset, ctx: RunContext,
) -> dict[str, dict[str, float]]:
    """Train the probes on the frozen backbone (resuming from ctx.work_dir) and evaluate the last epoch."""
    dist = tu.init_distributed(ctx)
    taps = tu.freeze(backbone.build_taps()).to(dist.device)
    torch.manual_seed(ctx.seed)
    model = tu.wrap_ddp(ProbeHeads(config.layers, num_classes, config.bn_momentum).to(dist.device), dist)
    heads = tu.unwrap(model)
    optimizer = torch.optim.SGD(
        tu.param_groups(heads, config.lr, config.weight_decay, config.norm_weight_decay),
        lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
    )
    path = ctx.work_dir / STATE_FILE
    key = f"{config_hash(config)}:{backbone.sha256}:{ctx.seed}"
    start, metrics = _resume(path, key, heads, optimizer)
    batch = tu.per_rank_batch(config.batch_size, dist)
    loader = tu.train_loader(train_set, batch, dist, ctx.seed, ctx.num_workers)
    for epoch in range(start, config.epochs):
        tu.seed_epoch(ctx.seed, epoch, dist)
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        tu.set_epoch_lr(optimizer, epoch, config.milestones, config.gamma)
        loss = _train_epoch(taps, model, optimizer, loader, config.layers, dist,
                            ctx.progress, f"{config.dataset} probe epoch {epoch + 1}/{config.epochs}")
        tu.assert_backbone_unchanged(taps.resnet, backbone.state_dict)
        LOG.info("%s probe epoch %d/%d: summed loss %.4f", config.dataset, epoch + 1, config.epochs, loss)
        tu.save_state(path, _state(key, epoch + 1, heads, optimizer, None), dist)
    if metrics is None:
        eval_loader = tu.val_loader(val_set, config.eval_batch_size, dist, ctx.num_workers)
        metrics = evaluate(taps, heads, eval_loader, config.layers, dist, ctx.progress)
        tu.save_state(path, _state(key, config.epochs, heads, optimizer, metrics), dist)
    return metrics


def _state(key: str, epoch: int, heads: nn.Module, optimizer: torch.optim.Optimizer,
           metrics: dict[str, dict[str, float]] | None) -> dict[str, object]:
    return {"format": STATE_FORMAT, "key": key, "epoch": epoch, "heads": tu.cpu_state(heads),
            "optimizer": optimizer.state_dict(), "metrics": metrics}


def _resume(path: Path, key: str, heads: nn.Module, optimizer: torch.optim.Optimizer,
            ) -> tuple[int, dict[str, dict[str, float]] | None]:
    state = tu.load_state(path, key)
    if state is None:
        if path.exists():
            LOG.warning("ignoring %s: it was made for another config, checkpoint or seed", path)
        return 0, None
    heads.load_state_dict(state["heads"])
    optimizer.load_state_dict(state["optimizer"])
    LOG.info("resuming probe training from %s after epoch %d", path, state["epoch"])
    return int(state["epoch"]), state.get("metrics")


def _train_epoch(
    taps: FeatureTaps, model: nn.Module, optimizer: torch.optim.Optimizer,
    loader: torch.utils.data.DataLoader, layers: Sequence[str], dist: tu.DistInfo, progress: bool, desc: str,
) -> float:
    model.train()
    total, steps = torch.zeros((), device=dist.device), 0
    for images, target in tqdm(loader, desc=desc, disable=not (progress and dist.is_main), leave=False):
        images = images.to(dist.device, non_blocking=True)
        target = target.to(dist.device, non_blocking=True)
        with torch.no_grad():
            feats = taps(images, layers)
        logits = model(feats)
        loss = torch.stack([F.cross_entropy(logits[name], target) for name in layers]).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
        steps += 1
    mean = float(total) / max(steps, 1)
    if not torch.isfinite(torch.tensor(mean)):
        LOG.warning("non-finite training loss (%s) in %s", mean, desc)
    return mean


def evaluate(
    taps: FeatureTaps, heads: nn.Module, loader: torch.utils.data.DataLoader, layers: Sequence[str],
    dist: tu.DistInfo, progress: bool,
) -> dict[str, dict[str, float]]:
    """Top-1 / top-5 (percent) of every head over the whole split, counts summed over ranks."""
    heads.eval()
    counts = torch.zeros(len(layers), 2, device=dist.device)
    seen = torch.zeros((), device=dist.device)
    with torch.no_grad():
        bar = tqdm(loader, desc="probe eval", disable=not (progress and dist.is_main), leave=False)
        for images, target in bar:
            images, target = images.to(dist.device), target.to(dist.device)
            logits = heads(taps(images, layers))
            for i, name in enumerate(layers):
                counts[i] += tu.topk_correct(logits[name], target)
            seen += target.numel()
    counts, seen = tu.reduce_sum(counts, dist).cpu(), float(tu.reduce_sum(seen, dist))
    if seen == 0:
        raise ValueError("the validation split is empty")
    return {name: {"top1": 100.0 * float(counts[i, 0]) / seen, "top5": 100.0 * float(counts[i, 1]) / seen}
            for i, name in enumerate(layers)}


if __name__ == "__main__":  # `python -m evaluators.classification.linear` / torchrun: the shared job CLI
    import sys

    from evaluators.suite.cli import main

    sys.exit(main(sys.argv[1:], benchmarks=tuple(CONFIGS)))
