"""The one literal table of checkpoint formats: where each library keeps the ResNet-50 and its rules.

A `Format` names the dotted path(s) inside the file where the weights live, tried in order (``""`` =
the file's top-level dict itself, so the bare state dict of the same model -- e.g. a safetensors
file -- is the same layout; nested dicts are read as dotted keys, so a flattened file is too), and
one rule list per network it can hold (the first is the default; ``--ckpt-key`` picks another,
e.g. DINO's ``student``).  Every key under the path must be
mapped onto the torchvision ResNet-50 names or dropped by a named rule (adapters.keys).  The
``source`` of each entry names the library code that writes that layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .keys import Rule, drop, trunk

PRETRAIN_FORMAT = "deepcluster-bench/pretrain/v1"
LIGHTLY_CHILDREN = (("0.", "conv1."), ("1.", "bn1."), ("4.", "layer1."), ("5.", "layer2."),
                    ("6.", "layer3."), ("7.", "layer4."))


@dataclass(frozen=True)
class Format:
    name: str
    containers: tuple[str, ...]  # dotted paths tried in order; "" = the top-level dict
    networks: Mapping[str, tuple[Rule, ...]]  # network name -> rules; the first is the default
    source: str

    @property
    def default_network(self) -> str:
        return next(iter(self.networks))


def _one(rules: tuple[Rule, ...]) -> Mapping[str, tuple[Rule, ...]]:
    return {"default": rules}


def _lightly_trunk(prefix: str, name: str) -> tuple[Rule, ...]:
    """torchvision children in `nn.Sequential(*list(resnet.children())[:-1])`: index keys."""
    return tuple(Rule(name, prefix + index, target) for index, target in LIGHTLY_CHILDREN)


def _dino(network: str, other: str) -> tuple[Rule, ...]:
    return (
        *trunk(f"{network}.module.backbone.", f"DINO {network} backbone (DDP-wrapped ResNet)"),
        *trunk(f"{network}.backbone.", f"DINO {network} backbone (not DDP-wrapped)"),
        drop(f"DINO {network} DINOHead", f"{network}.module.head."),
        drop(f"DINO {network} DINOHead", f"{network}.head."),
        drop(f"DINO {other} (the network not chosen; --ckpt-key {other})", f"{other}."),
        drop("DINO optimizer state", "optimizer", exact=True),
        drop("DINO optimizer state", "optimizer."),
        drop("DINO epoch", "epoch", exact=True),
        drop("DINO args (argparse.Namespace, read as inert metadata)", "args", exact=True),
        drop("DINO loss center buffer", "dino_loss."),
        drop("DINO fp16 scaler", "fp16_scaler."),
    )


_MM = "mmselfsup"
_SOLO_HEADS = ("classifier.", "projector.", "predictor.", "momentum_backbone.", "momentum_projector.",
               "momentum_classifier.", "prototypes.", "head.", "momentum_head.")
_LIGHTLY_HEADS = ("projection_head.", "prediction_head.", "backbone_momentum.", "projection_head_momentum.",
                  "criterion.", "prototypes.")

FORMATS: Mapping[str, Format] = {
    PRETRAIN_FORMAT: Format(
        PRETRAIN_FORMAT, ("backbone",), _one(trunk("", "resnet-50 trunk")),
        "this project's pretrain/checkpoint.py (docs/ARCHITECTURE.md)",
    ),
    "torchvision": Format(
        "torchvision", ("",),
        _one((*trunk("", "resnet-50 trunk"), drop("torchvision classifier", "fc."),
              drop("Sobel input filter of a deepcluster-bench torchvision export", "sobel_layer.",
                   sobel="fixed-or-1.x"))),
        "torchvision.models.resnet50().state_dict(); also timm resnet50, torch hub state dicts "
        "(Barlow Twins hubconf resnet50.pth, DINO dino_resnet50_pretrain.pth)",
    ),
    _MM: Format(
        _MM, ("state_dict", ""),
        _one((
            drop("1.x ResNetSobel sobel layer", "backbone.sobel_layer.", sobel="fixed-or-1.x"),
            *trunk("backbone.", "mmselfsup backbone"),
            drop("mmselfsup neck", "neck."),
            drop("mmselfsup head (incl. 0.x head.criterion.weight)", "head."),
            drop("1.x DeepCluster loss_weight buffer", "loss_weight", exact=True),
            drop("0.x DeepCluster(with_sobel) fixed sobel layer", "sobel_layer.", sobel="fixed"),
            drop("1.x data_preprocessor buffers", "data_preprocessor."),
        )),
        "mmselfsup 0.x/1.x runner checkpoints; mmselfsup/models/algorithms/deepcluster.py, "
        "mmselfsup/models/backbones/resnet.py (ResNetSobel), mmselfsup/models/utils/sobel.py",
    ),
    "mmselfsup-backbone": Format(
        "mmselfsup-backbone", ("state_dict",),
        _one((*trunk("", "resnet-50 trunk"), drop("torchvision-style classifier", "fc."),
              drop("ResNetSobel sobel layer", "sobel_layer.", sobel="fixed-or-1.x"))),
        "mmselfsup tools/model_converters/extract_backbone_weights.py",
    ),
    "moco": Format(
        "moco", ("state_dict", ""),
        _one((
            drop("moco query projection fc", "module.encoder_q.fc."),
            *trunk("module.encoder_q.", "moco query encoder"),
            drop("moco key encoder", "module.encoder_k."),
            drop("moco queue", "module.queue", exact=True),
            drop("moco queue pointer", "module.queue_ptr", exact=True),
        )),
        "facebookresearch/moco main_moco.py (save_checkpoint) + moco/builder.py",
    ),
    "solo-learn": Format(
        "solo-learn", ("state_dict", ""),
        _one((
            *trunk("backbone.", "solo-learn online backbone"),
            *(drop(f"solo-learn {p.rstrip('.')}", p) for p in _SOLO_HEADS),
            *(drop(f"solo-learn {b} buffer", b, exact=True) for b in ("queue", "queue_ptr", "queue_y")),
        )),
        "vturrisi/solo-learn solo/methods/base.py (BaseMethod, BaseMomentumMethod) and "
        "solo/methods/*.py; a PyTorch Lightning checkpoint (Trainer.save_checkpoint)",
    ),
    "lightly": Format(
        "lightly", ("state_dict", ""),
        _one((
            *_lightly_trunk("", "lightly backbone, bare nn.Sequential of resnet children"),
            *_lightly_trunk("backbone.", "lightly model backbone (nn.Sequential of resnet children)"),
            *_lightly_trunk("model.backbone.", "lightly SelfSupervisedEmbedding model.backbone"),
            *(drop(f"lightly {p.rstrip('.')}", p) for p in _LIGHTLY_HEADS),
            *(drop(f"lightly {p.rstrip('.')}", "model." + p) for p in _LIGHTLY_HEADS),
        )),
        "lightly-ai/lightly examples/pytorch_lightning/{simclr,byol}.py (backbone = "
        "nn.Sequential(*list(resnet.children())[:-1])), lightly/cli/_helpers.py (state_dict, 'model.')",
    ),
    "lightly-dino": Format(
        "lightly-dino", ("state_dict", ""),
        {
            "teacher": (*_lightly_trunk("teacher_backbone.", "lightly DINO teacher backbone"),
                        *(drop(f"lightly DINO {p}", p) for p in
                          ("student_backbone.", "student_head.", "teacher_head.", "criterion."))),
            "student": (*_lightly_trunk("student_backbone.", "lightly DINO student backbone"),
                        *(drop(f"lightly DINO {p}", p) for p in
                          ("teacher_backbone.", "student_head.", "teacher_head.", "criterion."))),
        },
        "lightly-ai/lightly examples/pytorch_lightning/dino.py",
    ),
    "vissl": Format(
        "vissl", ("classy_state_dict.base_model.model", ""),
        _one((
            *trunk("trunk._feature_blocks.", "vissl ResNeXt trunk _feature_blocks"),
            *trunk("trunk.base_model._feature_blocks.", "vissl FeatureExtractorModel trunk"),
            drop("vissl heads", "heads."),
        )),
        "facebookresearch/vissl vissl/models/base_ssl_model.py (get_classy_state), "
        "vissl/models/trunks/resnext.py (_feature_blocks), extra_scripts/convert_vissl_to_torchvision.py",
    ),
    "vissl-model-state-dict": Format(
        "vissl-model-state-dict", ("model_state_dict", ""),
        _one(trunk("_feature_blocks.", "vissl trunk _feature_blocks")),
        "facebookresearch/vissl extra_scripts/convert_classy_vision_to_vissl_resnet.py "
        "({'model_state_dict': trunk}), read by extra_scripts/convert_vissl_to_torchvision.py",
    ),
    "dino": Format(
        "dino", ("",),
        {"teacher": _dino("teacher", "student"), "student": _dino("student", "teacher")},
        "facebookresearch/dino main_dino.py (save_dict: student, teacher, optimizer, epoch, args, "
        "dino_loss, fp16_scaler; ResNets are DDP-wrapped: 'module.backbone.')",
    ),
    "swav": Format(
        "swav", ("state_dict", ""),
        _one((*trunk("module.", "swav DDP-wrapped ResNet-50"),
              drop("swav projection head", "module.projection_head."),
              drop("swav prototypes", "module.prototypes."))),
        "facebookresearch/swav main_swav.py (save_dict['state_dict']), src/resnet50.py; the hub "
        "release swav_800ep_pretrain.pth.tar is the bare 'module.' state dict (hubconf.py)",
    ),
    "dataparallel": Format(
        "dataparallel", ("state_dict", ""),
        _one((*trunk("module.", "torchvision ResNet-50 wrapped in (Distributed)DataParallel"),
              drop("torchvision classifier", "module.fc."))),
        "torch.nn.DataParallel / DistributedDataParallel state_dict of a torchvision ResNet-50 "
        "(pytorch/examples imagenet/main.py)",
    ),
    "barlowtwins": Format(
        "barlowtwins", ("model", "state_dict", ""),
        _one((*trunk("module.backbone.", "Barlow Twins backbone (DDP-wrapped)"),
              drop("Barlow Twins projector", "module.projector."),
              drop("Barlow Twins BatchNorm1d on the embedding", "module.bn."))),
        "facebookresearch/barlowtwins main.py (state = dict(epoch, model=model.state_dict(), "
        "optimizer); BarlowTwins.backbone/projector/bn)",
    ),
    "simclr": Format(
        "simclr", ("state_dict", ""),
        _one((*trunk("encoder.", "SimCLR encoder"), drop("SimCLR projector", "projector."))),
        "Spijkervet/SimCLR simclr/simclr.py (SimCLR.encoder with fc=Identity, SimCLR.projector)",
    ),
    "simsiam": Format(
        "simsiam", ("state_dict", ""),
        _one((drop("SimSiam projector (encoder.fc)", "module.encoder.fc."),
              *trunk("module.encoder.", "SimSiam encoder (DDP-wrapped)"),
              drop("SimSiam predictor", "module.predictor."))),
        "facebookresearch/simsiam simsiam/builder.py (encoder.fc = projector), main_simsiam.py",
    ),
}
