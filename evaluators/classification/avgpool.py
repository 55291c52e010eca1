"""AvgPool linear evaluation (the MoCo `main_lincls.py` setting) on ImageNet, iNaturalist2018, Places205.

The frozen backbone (eval mode, checked bit for bit after every epoch) gives the global-average-
pooled 2048-d feature; one Linear layer (normal std 0.01, bias 0) is trained with SGD lr 30,
momentum 0.9, no weight decay, 100 epochs with the lr divided by 10 at epochs 60 and 80, total
batch 256; RandomResizedCrop 224 + flip / Resize 256 + CenterCrop 224. Val runs after every epoch:
the rows of the `avgpool` layer are the last epoch's top-1 / top-5 (`top1`, `top5`) and the best
top-1 over the epochs with its epoch (`top1_best_epoch`, `best_epoch`), the number the page reports
(OpenSelfSup docs/MODEL_ZOO.md, ImageNet (Last): "The best top-1 result among all epochs is
reported"; r50_last_sobel.py validates every epoch). The training loop is
`evaluators.classification.linear.fit_probe`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dcbench.backbone import Backbone
from dcbench.context import RunContext
from dcbench.results import Measurement
from evaluators.classification import linear
from evaluators.classification.linear import tiny_config

SOURCE = (
    "MoCo facebookresearch/moco main_lincls.py defaults: lr 30, --schedule 60 80 (x0.1), momentum 0.9, "
    "wd 0, 100 epochs, batch 256, fc normal std 0.01 / bias 0, model.eval() during training, "
    "RandomResizedCrop 224 + flip / Resize 256 + CenterCrop 224; val after every epoch, best top-1 over "
    "the epochs reported beside the last (OpenSelfSup configs/benchmarks/linear_classification/imagenet/"
    "r50_last_sobel.py ValidateHook interval 1; docs/MODEL_ZOO.md: 'The best top-1 result among all "
    "epochs is reported')"
)


@dataclass(frozen=True)
class Config(linear.Config):
    """The multi-head probe's fields with MoCo's values; only the `avgpool` tap, no BatchNorm."""

    layers: tuple[str, ...] = ("avgpool",)
    epochs: int = 100
    milestones: tuple[int, ...] = (60, 80)
    gamma: float = 0.1
    lr: float = 30.0
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    norm_weight_decay: float = 0.0
    batch_size: int = 256
    train_transform: str = "rrc_flip"
    interpolation: str = "bilinear"
    val_every_epoch: bool = True  # the best epoch's top-1 is what the page reports (SOURCE)
    source: str = SOURCE


CONFIGS: Mapping[str, Config] = {
    "linear_avgpool_imagenet": Config(),
    "linear_avgpool_inat18": Config(dataset="inat18", num_classes=8142,
                                    source=SOURCE + "; 8142 iNaturalist2018 classes"),
    "linear_avgpool_places205": Config(dataset="places205", num_classes=205,
                                       source=SOURCE + "; 205 Places205 classes"),
}
TINY_CONFIGS: Mapping[str, Config] = {name: tiny_config(cfg) for name, cfg in CONFIGS.items()}
TINY = TINY_CONFIGS["linear_avgpool_imagenet"]


def run(backbone: Backbone, data_root: Path, config: Config, ctx: RunContext) -> list[Measurement]:
    """Train the AvgPool probe on `config.dataset`; rows: layer `avgpool`, metrics top1 / top5."""
    if tuple(config.layers) != ("avgpool",):
        raise ValueError(f"the AvgPool probe uses only the 'avgpool' tap, got layers {list(config.layers)}")
    return linear.run(backbone, data_root, config, ctx)
