"""Semi-supervised ImageNet classification: fine-tune the whole network on the 1% / 10% subsets.

Protocol (MMSelfSup 1.x `imagenet_1percent/` and `imagenet_10percent/` configs): the backbone plus
a global-average-pooling Linear head (normal std 0.01, bias 0) are all fine-tuned with SGD
(momentum 0.9, weight decay on every parameter, the head's lr multiplied by `head{1,10,100}`),
20 epochs with the lr times 0.2 at epochs 12 and 16, total batch 64 x 4, SyncBN when distributed,
deterministic. The settings run are a per-model choice (`Config.settings`): by default the
reference's for the model, i.e. the grid lr x head multiplier for RGB models and the one setting
lr 0.01 x head 1 for Sobel (DeepCluster) models, the only Sobel config the references have;
`settings="grid"` runs the grid for every model. Every setting is one variant row (`lr0.1_head10`,
top1 / top5 of the last epoch on val). A finished setting's result json in `ctx.work_dir/<variant>/`
is reused; an unfinished one resumes from its per-epoch state. The table picks the best setting
(on val, the split it reports, labelled so); `best_setting` does the same for callers.
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

from dcbench.backbone import TAP_SPECS, Backbone
from dcbench.config import execution_detail, protocol_dict, replace
from dcbench.context import RunContext
from dcbench.datasets.common import ImageListDataset
from dcbench.distributed import DistInfo, barrier, init_distributed, unwrap, wrap_ddp
from dcbench.fileio import atomic_write_text
from dcbench.results import Measurement
from evaluators.classification import loop
from evaluators.classification.data import check_classes, read_split, train_loader, val_loader
from evaluators.classification.state import cpu_state, load_state, save_state
from evaluators.classification.transforms import eval_transform, train_transform

LOG = logging.getLogger(__name__)
RESULT_FILE = "result.json"
STATE_FILE = "state.pth"
STATE_FORMAT = "deepcluster-bench/semisup/v1"
GRID_FIELDS = ("lrs", "head_lr_mults", "settings", "sobel_settings", "settings_source")
SETTINGS = ("reference", "grid")

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
SETTINGS_SOURCE = (
    "reference: RGB models the 3 x 3 grid (OpenSelfSup configs/benchmarks/semi_classification/"
    "imagenet_{1,10}percent/r50_lr{0_1,0_01,0_001}_head{1,10,100}.py; MMSelfSup " + _GRID + "); Sobel "
    "models one setting, lr 0.01 x head 1 (OpenSelfSup .../imagenet_{1,10}percent/r50_lr0_01_head1_sobel.py, "
    "MMSelfSup " + _DIR + "imagenet_{1,10}percent/resnet50-sobel_4xb64-steplr1e-2-20e_in1k-{1,10}pct.py: "
    "the only Sobel configs; the DeepCluster rows of OpenSelfSup docs/MODEL_ZOO.md name it)"
)


@dataclass(frozen=True)
class Config:
    subset: str = "1percent"  # dcbench.datasets.imagenet subset: 1percent | 10percent
    dataset: str = "imagenet_1pct"  # the rows' dataset name
    num_classes: int | None = 1000  # None: take the class count from the data (tiny data only)
    lrs: tuple[float, ...] = (0.1, 0.01, 0.001)
    head_lr_mults: tuple[float, ...] = (1.0, 10.0, 100.0)
    settings: str = "reference"  # reference: the reference's settings for the model; grid: lrs x mults always
    sobel_settings: tuple[tuple[float, float], ...] = ((0.01, 1.0),)  # (lr, head multiplier), Sobel models
    settings_source: str = SETTINGS_SOURCE
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
    # gradient accumulation (loop.micro_batch): an execution detail, outside the config hash; the
    # fine-tuned trunk's BatchNorm then sees micro-batch statistics, as it sees per-GPU ones (README)
    accum_steps: int = execution_detail(1)
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


def settings_for(config: Config, sobel: bool) -> list[tuple[float, float]]:
    """The (lr, head multiplier) settings to run for a model: the reference's for it, or the grid."""
    if config.settings == "reference" and sobel:
        return [(float(lr), float(mult)) for lr, mult in config.sobel_settings]
    return grid(config)


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
        self.input_filter = backbone.input_filter()  # the fixed Sobel filter or the checkpoint's own
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
    if config.settings not in SETTINGS:
        problems.append(f"settings must be one of {SETTINGS}, got {config.settings!r}")
    if not config.sobel_settings or any(len(pair) != 2 for pair in config.sobel_settings):
        problems.append(f"sobel_settings must be (lr, head multiplier) pairs, got {config.sobel_settings!r}")
    if config.epochs < 1 or config.batch_size < 1 or config.eval_batch_size < 1 or config.accum_steps < 1:
        problems.append("epochs, batch_size, eval_batch_size and accum_steps must be positive")
    if problems:
        raise ValueError("bad semisup Config: " + "; ".join(problems))


def run(backbone: Backbone, data_root: Path, config: Config, ctx: RunContext) -> list[Measurement]:
    """Fine-tune the model's (lr, head multiplier) settings; two rows (top1, top5) per setting variant."""
    validate_config(config)
    train_list = read_split(data_root, "imagenet", "train", subset=config.subset)
    val_list = read_split(data_root, "imagenet", "val")
    num_classes = check_classes(train_list, val_list, config.num_classes)
    train_set = ImageListDataset(train_list.paths, train_list.labels, train_transform(
        "rrc_flip", config.crop_size, config.resize_size, config.interpolation))
    val_set = ImageListDataset(val_list.paths, val_list.labels, eval_transform(
        config.crop_size, config.resize_size, config.interpolation))
    rows = []
    for lr, mult in settings_for(config, backbone.sobel):
        metrics = run_setting(backbone, config, num_classes, (lr, mult), (train_set, val_set), ctx)
        variant = variant_name(lr, mult)
        rows += [Measurement(dataset=config.dataset, metric=m, value=metrics[m], variant=variant)
                 for m in ("top1", "top5")]
    return rows


def setting_key(config: Config, lr: float, head_lr_mult: float, checkpoint_sha256: str, seed: int) -> str:
    """What a setting's result depends on: the config without the grid, the setting, checkpoint, seed."""
    fields = {k: v for k, v in protocol_dict(config).items() if k not in GRID_FIELDS}
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
    with loop.deterministic_mode(config.deterministic):
        metrics, dist = fine_tune(backbone, config, num_classes, setting, data, ctx, folder / STATE_FILE, key)
    if dist.is_main:
        atomic_write_text(folder / RESULT_FILE, json.dumps({"key": key, **metrics}, indent=1, sort_keys=True))
        (folder / STATE_FILE).unlink(missing_ok=True)
    barrier(dist)
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
) -> tuple[dict[str, float], DistInfo]:
    """Fine-tune the whole network for one setting; returns the last epoch's val top-1/top-5."""
    lr, mult = setting
    dist = init_distributed(ctx.device)
    torch.manual_seed(ctx.seed)
    model = wrap_ddp(FineTuneNet(backbone, num_classes).to(dist.device), dist)
    net = unwrap(model)
    groups = _param_groups(net, lr, mult, config.weight_decay)
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=config.momentum)
    start = _resume(state_path, key, net, optimizer)

    def after_epoch(done: int, loss: float) -> None:
        state = {"format": STATE_FORMAT, "key": key, "epoch": done, "model": cpu_state(net),
                 "optimizer": optimizer.state_dict()}
        save_state(state_path, state, dist)

    batch = loop.micro_batch(config.batch_size, dist, config.accum_steps)
    loader = train_loader(data[0], batch, dist, ctx.seed, ctx.num_workers)
    plan = loop.EpochPlan(config.epochs, config.milestones, config.gamma, ctx.seed, variant_name(lr, mult),
                          ctx.progress, config.accum_steps)
    loop.train_epochs(model, lambda images, target: F.cross_entropy(model(images), target), optimizer,
                      loader, plan, start, dist, after_epoch)
    val = val_loader(data[1], config.eval_batch_size, dist, ctx.num_workers)
    metrics = loop.evaluate(net, lambda images: {"net": net(images)}, ("net",), val, dist, ctx.progress,
                            "semisup eval")
    return metrics["net"], dist


def _param_groups(net: FineTuneNet, lr: float, head_lr_mult: float, weight_decay: float) -> list[dict]:
    head = list(net.head.parameters())
    head_ids = {id(p) for p in head}
    trunk = [p for p in net.parameters() if id(p) not in head_ids]
    head_lr = lr * head_lr_mult
    return [{"params": trunk, "lr": lr, "initial_lr": lr, "weight_decay": weight_decay},
            {"params": head, "lr": head_lr, "initial_lr": head_lr, "weight_decay": weight_decay}]


def _resume(path: Path, key: str, net: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    state = load_state(path, key)
    if state is None:
        return 0
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    LOG.info("resuming fine-tuning from %s after epoch %d", path, state["epoch"])
    return int(state["epoch"])
