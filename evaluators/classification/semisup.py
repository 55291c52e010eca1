"""Semi-supervised ImageNet classification: fine-tune the whole network on the 1% / 10% subsets.

Protocol (MMSelfSup 1.x `imagenet_1percent/` and `imagenet_10percent/` configs): the backbone plus
a global-average-pooling Linear head (normal std 0.01, bias 0) are all fine-tuned with SGD
(momentum 0.9, weight decay on every parameter, the head's lr multiplied by `head{1,10,100}`),
20 epochs with the lr times 0.2 at epochs 12 and 16, total batch 64 x 4, SyncBN when distributed,
deterministic. One run executes the whole grid lr x head multiplier; every setting is one variant
row (`lr0.1_head10`, top1 / top5 of the last epoch on val). A finished setting's result json in
`ctx.work_dir/<variant>/` is reused; an unfinished one resumes from its per-epoch state. The table
picks the best setting; `best_setting` does the same for callers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from dcbench.backbone import TAP_SPECS, Backbone, input_filter
from dcbench.config import replace, to_dict
from dcbench.context import RunContext
from dcbench.datasets.common import ImageListDataset
from dcbench.fileio import atomic_write_text
from dcbench.results import Measurement
from evaluators.classification import train_utils as tu

LOG = logging.getLogger("deepcluster_bench")
RESULT_FILE = "result.json"
STATE_FILE = "state.pth"
STATE_FORMAT = "deepcluster-bench/semisup/v1"
GRID_FIELDS = ("lrs", "head_lr_mults")

_DIR = "MMSelfSup 1.x configs/benchmarks/classification/imagenet/"
_COMMON = (
    ": SGD momentum 0.9, weight decay on all parameters, paramwise custom_keys head lr_mult "
    "{1,10,100} x lr {1e-1,1e-2,1e-3}, MultiStepLR [12, 16] gamma 0.2, 20 epochs, batch 64 x 4 GPUs, "
    "SyncBN; _base_/models/resnet50.py (GlobalAveragePooling + LinearClsHead, Normal std 0.01); "
    "_base_/datasets/imagenet.py (RandomResizedCrop 224 + flip / ResizeEdge 256 + CenterCrop 224); "
    "run with --deterministic (DeepCluster model-zoo page)"
)
_GRID = "resnet50_head{1,10,100}_4xb64-steplr{1e-1,1e-2,1e-3}-20e_in1k"
SOURCE_1PCT = _DIR + "imagenet_1percent/" + _GRID + "-1pct.py, wd 5e-4" + _COMMON
SOURCE_10PCT = _DIR + "imagenet_10percent/" + _GRID + "-10pct.py, wd 1e-4" + _COMMON


@dataclass(frozen=True)
class Config:
    subset: str = "1percent"  # dcbench.datasets.imagenet subset: 1percent | 10percent
    dataset: str = "imagenet_1pct"  # the rows' dataset name
    num_classes: int | None = 1000  # None: take the class count from the data (tiny data only)
    lrs: tuple[float, ...] = (0.1, 0.01, 0.001)
    head_lr_mults: tuple[float, ...] = (1.0, 10.0, 100.0)
    epochs: int = 20
    milestones: tuple[int, ...] = (12, 16)
    gamma: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256  # total over all processes: 64 per GPU x 4 GPUs
    eval_batch_size: int = 256  # per process (evaluation only)
    crop_size: int = 224
    resize_size: int = 256
    interpolation: str = "bilinear"
    deterministic: bool = True
    source: str = SOURCE_1PCT


CONFIGS: Mapping[str, Config] = {
    "semisup_1pct": Config(),
    "semisup_10pct": Config(subset="10percent", dataset="imagenet_10pct", weight_decay=1e-4,
                            source=SOURCE_10PCT),
}


def tiny_config(config: Config) -> Config:
    """Same protocol, CI-sized numbers: 64 px crops, 1 epoch, batch 16, a 2-setting grid."""
    return replace(
        config, num_classes=None, lrs=(0.01,), head_lr_mults=(1.0, 10.0), epochs=1, milestones=(1,),
        batch_size=16, eval_batch_size=32, crop_size=64, resize_size=72,
        source=config.source + " [tiny: CI-sized numbers, 2 settings]",
    )


TINY_CONFIGS: Mapping[str, Config] = {name: tiny_config(cfg) for name, cfg in CONFIGS.items()}
TINY = TINY_CONFIGS["semisup_1pct"]


def variant_name(lr: float, head_lr_mult: float) -> str:
    """`lr0.1_head10` style: the base lr and the head's lr multiplier."""
    return f"lr{lr:g}_head{head_lr_mult:g}"


def grid(config: Config) -> list[tuple[float, float]]:
    return [(lr, mult) for lr in config.lrs for mult in config.head_lr_mults]


def best_setting(rows: Sequence[Measurement]) -> str:
    """The variant with the highest top-1 (ties: higher top-5, then the first in row order)."""
    top1 = {m.variant: m.value for m in rows if m.metric == "top1" and m.variant is not None}
    if not top1:
        raise ValueError("no top1 rows with a variant to choose from")
    top5 = {m.variant: m.value for m in rows if m.metric == "top5"}
    return max(top1, key=lambda v: (top1[v], top5.get(v, float("-inf"))))


class GlobalMeanPool(nn.Module):
    """Global average pooling as a mean (deterministic backward, unlike CUDA adaptive pooling)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class FineTuneNet(nn.Module):
    """Input filter (Sobel for Sobel checkpoints) + ResNet-50 trunk + global average pool + Linear head."""

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        self.input_filter = input_filter(backbone.sobel)
        self.trunk = backbone.build_resnet()
        self.trunk.avgpool = GlobalMeanPool()
        self.head = nn.Linear(TAP_SPECS["feature5"].channels, num_classes)
        nn.init.normal_(self.head.weight, mean=0.0, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(self.input_filter(x)))


def validate_config(config: Config) -> None:
    problems = []
    if config.subset not in ("1percent", "10percent"):
        problems.append(f"subset must be '1percent' or '10percent', got {config.subset!r}")
    if not config.lrs or not config.head_lr_mults:
        problems.append("the grid (lrs x head_lr_mults) must not be empty")
    if config.epochs < 1 or config.batch_size < 1 or config.eval_batch_size < 1:
        problems.append("epochs, batch_size and eval_batch_size must be positive")
    if problems:
        raise ValueError("bad semisup Config: " + "; ".join(problems))


def run(backbone: Backbone, data_root: Path, config: Config, ctx: RunContext) -> list[Measurement]:
    """Fine-tune every (lr, head multiplier) setting; two rows (top1, top5) per setting variant."""
    validate_config(config)
    train_list = tu.read_split(data_root, "imagenet", "train", subset=config.subset)
    val_list = tu.read_split(data_root, "imagenet", "val")
    num_classes = tu.check_classes(train_list, val_list, config.num_classes)
    train_set = ImageListDataset(train_list.paths, train_list.labels, tu.train_transform(
        "rrc_flip", config.crop_size, config.resize_size, config.interpolation))
    val_set = ImageListDataset(val_list.paths, val_list.labels, tu.eval_transform(
        config.crop_size, config.resize_size, config.interpolation))
    rows = []
    for lr, mult in grid(config):
        metrics = run_setting(backbone, config, num_classes, (lr, mult), (train_set, val_set), ctx)
        variant = variant_name(lr, mult)
        rows += [Measurement(dataset=config.dataset, metric=m, value=metrics[m], variant=variant)
                 for m in ("top1", "top5")]
    return rows


def setting_key(config: Config, lr: float, head_lr_mult: float, checkpoint_sha256: str, seed: int) -> str:
    """What a setting's result depends on: the config without the grid, the setting, checkpoint, seed."""
    fields = {k: v for k, v in to_dict(config).items() if k not in GRID_FIELDS}
    payload = json.dumps({"config": fields, "lr": lr, "head_lr_mult": head_lr_mult,
                          "checkpoint": checkpoint_sha256, "seed": seed}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def run_setting(
    backbone: Backbone, config: Config, num_classes: int, setting: tuple[float, float],
    data: tuple[torch.utils.data.Dataset, torch.utils.data.Dataset], ctx: RunContext,
) -> dict[str, float]:
    """One grid setting: reuse its finished result, or fine-tune (resuming) and record it."""
    lr, mult = setting
    folder = ctx.work_dir / variant_name(lr, mult)
    key = setting_key(config, lr, mult, backbone.sha256, ctx.seed)
    done = _read_result(folder / RESULT_FILE, key)
    if done is not None:
        LOG.info("semisup %s: reusing the finished result in %s", variant_name(lr, mult), folder)
        return done
    with tu.deterministic_mode(config.deterministic):
        metrics, dist = fine_tune(backbone, config, num_classes, setting, data, ctx, folder / STATE_FILE, key)
    if dist.is_main:
        atomic_write_text(folder / RESULT_FILE, json.dumps({"key": key, **metrics}, indent=1, sort_keys=True))
        (folder / STATE_FILE).unlink(missing_ok=True)
    tu.barrier(dist)
    return metrics


def _read_result(path: Path, key: str) -> dict[str, float] | None:
    if not path.exists():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    if saved.get("key") != key:
        LOG.warning("ignoring %s: it was made for another config, checkpoint or seed", path)
        return None
    return {"top1": float(saved["top1"]), "top5": float(saved["top5"])}


def fine_tune(
    backbone: Backbone, config: Config, num_classes: int, setting: tuple[float, float],
    data: tuple[torch.utils.data.Dataset, torch.utils.data.Dataset], ctx: RunContext,
    state_path: Path, key: str,
) -> tuple[dict[str, float], tu.DistInfo]:
    """Fine-tune the whole network for one setting; returns the last epoch's val top-1/top-5."""
    lr, mult = setting
    dist = tu.init_distributed(ctx)
    torch.manual_seed(ctx.seed)
    model = tu.wrap_ddp(FineTuneNet(backbone, num_classes).to(dist.device), dist)
    net = tu.unwrap(model)
    groups = _param_groups(net, lr, mult, config.weight_decay)
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=config.momentum)
    start = _resume(state_path, key, net, optimizer)
    batch = tu.per_rank_batch(config.batch_size, dist)
    loader = tu.train_loader(data[0], batch, dist, ctx.seed, ctx.num_workers)
    name = variant_name(lr, mult)
    for epoch in range(start, config.epochs):
        tu.seed_epoch(ctx.seed, epoch, dist)
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        tu.set_epoch_lr(optimizer, epoch, config.milestones, config.gamma)
        desc = f"{name} epoch {epoch + 1}/{config.epochs}"
        loss = _train_epoch(model, optimizer, loader, dist, ctx.progress, desc)
        LOG.info("semisup %s epoch %d/%d: loss %.4f", name, epoch + 1, config.epochs, loss)
        state = {"format": STATE_FORMAT, "key": key, "epoch": epoch + 1, "model": tu.cpu_state(net),
                 "optimizer": optimizer.state_dict()}
        tu.save_state(state_path, state, dist)
    val = tu.val_loader(data[1], config.eval_batch_size, dist, ctx.num_workers)
    return evaluate(net, val, dist, ctx.progress), dist


def _param_groups(net: FineTuneNet, lr: float, head_lr_mult: float, weight_decay: float) -> list[dict]:
    head = list(net.head.parameters())
    head_ids = {id(p) for p in head}
    trunk = [p for p in net.parameters() if id(p) not in head_ids]
    head_lr = lr * head_lr_mult
    return [{"params": trunk, "lr": lr, "initial_lr": lr, "weight_decay": weight_decay},
            {"params": head, "lr": head_lr, "initial_lr": head_lr, "weight_decay": weight_decay}]


def _resume(path: Path, key: str, net: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    state = tu.load_state(path, key)
    if state is None:
        return 0
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    LOG.info("resuming fine-tuning from %s after epoch %d", path, state["epoch"])
    return int(state["epoch"])


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader: torch.utils.data.DataLoader,
                 dist: tu.DistInfo, progress: bool, desc: str) -> float:
    model.train()
    total, steps = torch.zeros((), device=dist.device), 0
    for images, target in tqdm(loader, desc=desc, disable=not (progress and dist.is_main), leave=False):
        images = images.to(dist.device, non_blocking=True)
        target = target.to(dist.device, non_blocking=True)
        loss = F.cross_entropy(model(images), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
        steps += 1
    return float(total) / max(steps, 1)


def evaluate(net: nn.Module, loader: torch.utils.data.DataLoader, dist: tu.DistInfo, progress: bool,
             ) -> dict[str, float]:
    """Top-1 / top-5 (percent) over the whole split, counts summed over ranks."""
    net.eval()
    counts = torch.zeros(2, device=dist.device)
    seen = torch.zeros((), device=dist.device)
    with torch.no_grad():
        bar = tqdm(loader, desc="semisup eval", disable=not (progress and dist.is_main), leave=False)
        for images, target in bar:
            images, target = images.to(dist.device), target.to(dist.device)
            counts += tu.topk_correct(net(images), target)
            seen += target.numel()
    counts, total = tu.reduce_sum(counts, dist).cpu(), float(tu.reduce_sum(seen, dist))
    if total == 0:
        raise ValueError("the validation split is empty")
    return {"top1": 100.0 * float(counts[0]) / total, "top5": 100.0 * float(counts[1]) / total}


if __name__ == "__main__":  # `python -m evaluators.classification.semisup` / torchrun: the shared job CLI
    import sys

    from evaluators.suite.cli import main

    sys.exit(main(sys.argv[1:], benchmarks=tuple(CONFIGS)))
