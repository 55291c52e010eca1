"""One synthetic checkpoint per library layout, keyed and nested as that library writes it.

Each builder names the code it follows.  Tensors are per-key constants stored as one expanded
element (files stay tiny); the canonical tensors loaded back must equal the source ones, and the
network not chosen (DINO's student, momentum encoders, heads) holds other values.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from adapters import CheckpointError, load_checkpoint
from adapters.__main__ import main
from adapters.formats import FORMATS
from dcbench.backbone import weights_sha256

State = dict[str, torch.Tensor]


def const(
    shape: torch.Size | tuple[int, ...], value: float, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    return torch.full((), value, dtype=dtype).expand(shape)


@pytest.fixture(scope="module")
def canonical() -> State:
    """The canonical backbone: torchvision ResNet-50 keys without fc, one constant per key."""
    with torch.device("meta"):
        model = torchvision.models.resnet50()
    keys = [(k, v) for k, v in model.state_dict().items() if not k.startswith("fc.")]
    return {
        k: torch.tensor(i) if k.endswith("num_batches_tracked") else const(v.shape, float(i))
        for i, (k, v) in enumerate(keys)
    }


def other(state: State, offset: float = 1000.0) -> State:
    """Same keys, other values: a second network (momentum encoder, DINO student, ...)."""
    return {
        k: v + int(offset) if not v.is_floating_point() else const(v.shape, float(v.reshape(-1)[0]) + offset)
        for k, v in state.items()
    }


def prefixed(prefix: str, state: Mapping[str, torch.Tensor]) -> State:
    return {prefix + k: v for k, v in state.items()}


def head(prefix: str, *shapes: tuple[int, ...]) -> State:
    return {f"{prefix}{i}.weight": const(s, -1.0) for i, s in enumerate(shapes)}


def bn(prefix: str, channels: int) -> State:
    return {
        f"{prefix}.weight": const((channels,), 1.0),
        f"{prefix}.bias": const((channels,), 0.0),
        f"{prefix}.running_mean": const((channels,), 0.0),
        f"{prefix}.running_var": const((channels,), 1.0),
        f"{prefix}.num_batches_tracked": torch.tensor(5),
    }


def sequential_children(state: State) -> State:
    """`nn.Sequential(*list(resnet.children())[:-1]).state_dict()`: the real index keys, torch's naming."""
    with torch.device("meta"):
        resnet = torchvision.models.resnet50()
        seq = nn.Sequential(*list(resnet.children())[:-1])
    names = [k for k in resnet.state_dict() if not k.startswith("fc.")]
    return dict(zip(seq.state_dict().keys(), (state[k] for k in names), strict=True))


def lightning(state_dict: State, **extra: object) -> dict[str, object]:
    """A PyTorch Lightning checkpoint: Lightning's CheckpointConnector.dump_checkpoint top-level keys
    (src/lightning/pytorch/trainer/connectors/checkpoint_connector.py)."""
    return {
        "epoch": 99,
        "global_step": 1000,
        "pytorch-lightning_version": "2.1.3",
        "state_dict": state_dict,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"completed": 99}}}},
        "callbacks": {"ModelCheckpoint{'monitor': None, 'mode': 'min'}": {"best_model_score": None}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.3, "params": [0, 1]}]}],
        "lr_schedulers": [{"last_epoch": 99}],
        **extra,
    }


# --- lightly: lightly-ai/lightly examples/pytorch_lightning/{simclr,byol,dino}.py, lightly/cli/_helpers.py
def lightly_bare(c: State) -> object:
    """examples: `backbone = nn.Sequential(*list(resnet.children())[:-1])`, saved as its state dict."""
    return sequential_children(c)


def lightly_simclr(c: State) -> object:
    """examples/pytorch_lightning/simclr.py: self.backbone + self.projection_head (SimCLRProjectionHead)."""
    sd = prefixed("backbone.", sequential_children(c))
    sd |= head("projection_head.layers.", (2048, 2048)) | bn("projection_head.layers.1", 2048)
    sd |= {"projection_head.layers.3.weight": const((128, 2048), -1.0)}
    return lightning(sd)


def lightly_byol(c: State) -> object:
    """examples/pytorch_lightning/byol.py: backbone, projection_head, prediction_head, *_momentum."""
    sd = prefixed("backbone.", sequential_children(c)) | prefixed(
        "backbone_momentum.", sequential_children(other(c))
    )
    for name in ("projection_head", "projection_head_momentum", "prediction_head"):
        sd |= head(f"{name}.layers.", (4096, 2048)) | bn(f"{name}.layers.1", 4096)
    return lightning(sd)


def lightly_cli(c: State) -> object:
    """lightly/cli/_helpers.py: the CLI's Lightning checkpoint keys carry a 'model.' prefix it strips."""
    sd = prefixed("model.backbone.", sequential_children(c)) | head(
        "model.projection_head.layers.", (128, 2048)
    )
    return {"state_dict": sd, "epoch": 100}


def lightly_dino(c: State) -> object:
    """examples/pytorch_lightning/dino.py: student/teacher backbone + DINOProjectionHead, DINOLoss center."""
    sd = prefixed("teacher_backbone.", sequential_children(c))
    sd |= prefixed("student_backbone.", sequential_children(other(c)))
    for name in ("student_head", "teacher_head"):
        sd |= head(f"{name}.layer.", (2048, 2048)) | {f"{name}.last_layer.weight_v": const((2048, 256), 1.0)}
    return lightning(sd | {"criterion.center": const((1, 1, 2048), 0.0)})


# --- solo-learn: vturrisi/solo-learn solo/methods/base.py (BaseMethod: backbone with fc=Identity,
# classifier; BaseMomentumMethod: momentum_backbone, momentum_classifier) and solo/methods/*.py
def solo_simclr(c: State) -> object:
    """solo/methods/simclr.py: projector; base.py: online linear classifier."""
    sd = prefixed("backbone.", c) | {
        "classifier.weight": const((1000, 2048), 0.5),
        "classifier.bias": const((1000,), 0),
    }
    sd |= {"projector.0.weight": const((2048, 2048), 1.0), "projector.2.weight": const((256, 2048), 1.0)}
    return lightning(sd)


def solo_byol(c: State) -> object:
    """solo/methods/byol.py: projector, momentum_projector, predictor; base.py: momentum_backbone."""
    sd = prefixed("backbone.", c) | prefixed("momentum_backbone.", other(c))
    sd |= {"classifier.weight": const((1000, 2048), 0.5), "classifier.bias": const((1000,), 0.0)}
    for name in ("projector", "momentum_projector", "predictor"):
        sd |= {f"{name}.0.weight": const((4096, 2048), 1.0)} | bn(f"{name}.1", 4096)
    return lightning(sd)


def solo_mocov2plus(c: State) -> object:
    """solo/methods/mocov2plus.py: register_buffer('queue'), register_buffer('queue_ptr')."""
    sd = prefixed("backbone.", c) | prefixed("momentum_backbone.", other(c))
    sd |= {
        "classifier.weight": const((1000, 2048), 0.5),
        "classifier.bias": const((1000,), 0.0),
        "projector.0.weight": const((2048, 2048), 1.0),
        "momentum_projector.0.weight": const((2048, 2048), 1.0),
        "queue": const((2, 256, 65536), 0.0),
        "queue_ptr": torch.zeros(1, dtype=torch.long),
    }
    return lightning(sd)


# --- VISSL: facebookresearch/vissl vissl/models/base_ssl_model.py (get_classy_state: model.{trunk,heads},
# meta), vissl/models/trunks/resnext.py (_feature_blocks ModuleDict), vissl/utils/checkpoint.py
def vissl_checkpoint(c: State) -> object:
    trunk = prefixed("_feature_blocks.", c)
    heads = {
        "0.projection_head.0.weight": const((2048, 2048), 1.0),
        "0.prototypes0.weight": const((3000, 128), 1.0),
    }
    base_model = {"model": {"trunk": trunk, "heads": heads}, "meta": {"trunk": {}, "heads": []}}
    classy = {
        "train": True,
        "base_model": base_model,
        "optimizer": {"state": {}, "param_groups": []},
        "phase_idx": 3,
        "train_phase_idx": 3,
        "num_updates": 500,
        "losses": [],
        "hooks": {},
    }
    return {
        "phase_idx": 3,
        "iteration": 500,
        "loss": torch.tensor(1.5),
        "iteration_num": 500,
        "train_phase_idx": 3,
        "classy_state_dict": classy,
    }


def vissl_model_state_dict(c: State) -> object:
    """extra_scripts/convert_classy_vision_to_vissl_resnet.py: {"model_state_dict": <_feature_blocks.*>}."""
    return {"model_state_dict": prefixed("_feature_blocks.", c)}


# --- DINO: facebookresearch/dino main_dino.py (save_dict; ResNets have BatchNorm so both are DDP-wrapped),
# vision_transformer.py DINOHead (mlp, last_layer with weight_norm)
def dino_head(prefix: str) -> State:
    return {
        f"{prefix}mlp.0.weight": const((2048, 2048), 1.0),
        f"{prefix}mlp.0.bias": const((2048,), 0.0),
        f"{prefix}mlp.2.weight": const((256, 2048), 1.0),
        f"{prefix}mlp.2.bias": const((256,), 0.0),
        f"{prefix}last_layer.weight_g": const((60000, 1), 1.0),
        f"{prefix}last_layer.weight_v": const((60000, 256), 1.0),
    }


def dino_full(c: State) -> object:
    teacher = prefixed("module.backbone.", c) | dino_head("module.head.")
    student = prefixed("module.backbone.", other(c)) | dino_head("module.head.")
    args = argparse.Namespace(arch="resnet50", out_dim=60000, epochs=800, lr=0.3)
    return {
        "student": student,
        "teacher": teacher,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.3}]},
        "epoch": 800,
        "args": args,
        "dino_loss": {"center": const((1, 60000), 0.0)},
        "fp16_scaler": {"scale": 65536.0, "growth_factor": 2.0},
    }


# --- SwAV: facebookresearch/swav main_swav.py (save_dict epoch/state_dict/optimizer), src/resnet50.py
# (projection_head Sequential, prototypes Linear), hubconf.py (bare 'module.' release)
def swav_state(c: State) -> State:
    sd = prefixed("module.", c) | {"module.projection_head.0.weight": const((2048, 2048), 1.0)}
    sd |= bn("module.projection_head.1", 2048) | {
        "module.projection_head.3.weight": const((128, 2048), 1.0),
        "module.prototypes.weight": const((3000, 128), 1.0),
    }
    return sd


def swav_checkpoint(c: State) -> object:
    return {"epoch": 800, "state_dict": swav_state(c), "optimizer": {"state": {}, "param_groups": []}}


def swav_hub(c: State) -> object:
    return swav_state(c)


# --- Barlow Twins: facebookresearch/barlowtwins main.py (state = dict(epoch, model=model.state_dict(),
# optimizer); BarlowTwins.backbone / projector / bn(affine=False), DDP-wrapped)
def barlowtwins_checkpoint(c: State) -> object:
    model = prefixed("module.backbone.", c) | {"module.projector.0.weight": const((8192, 2048), 1.0)}
    model |= bn("module.projector.1", 8192) | {"module.projector.3.weight": const((8192, 8192), 1.0)}
    model |= {k: v for k, v in bn("module.bn", 8192).items() if "running" in k or "num_batches" in k}
    return {"epoch": 1000, "model": model, "optimizer": {"state": {}, "param_groups": []}}


def barlowtwins_hub(c: State) -> object:
    """main.py: torch.save(model.module.backbone.state_dict(), 'resnet50.pth') -- fc is Identity."""
    return dict(c)


# --- SimCLR: Spijkervet/SimCLR simclr/simclr.py (encoder with fc=Identity, projector Sequential)
def simclr_state(c: State) -> object:
    return prefixed("encoder.", c) | {
        "projector.0.weight": const((2048, 2048), 1.0),
        "projector.2.weight": const((64, 2048), 1.0),
    }


# --- SimSiam: facebookresearch/simsiam simsiam/builder.py (encoder.fc = 3-layer projector), main_simsiam.py
def simsiam_checkpoint(c: State) -> object:
    sd = prefixed("module.encoder.", c) | {"module.encoder.fc.0.weight": const((2048, 2048), 1.0)}
    sd |= bn("module.encoder.fc.1", 2048) | {
        "module.encoder.fc.6.weight": const((2048, 2048), 1.0),
        "module.encoder.fc.6.bias": const((2048,), 0.0),
    }
    sd |= {
        "module.predictor.0.weight": const((512, 2048), 1.0),
        "module.predictor.3.weight": const((2048, 512), 1.0),
    }
    return {
        "epoch": 100,
        "arch": "resnet50",
        "state_dict": sd,
        "optimizer": {"state": {}, "param_groups": []},
    }


# --- torch DataParallel: pytorch/examples imagenet/main.py save_checkpoint (epoch, arch, state_dict, ...)
def dataparallel_checkpoint(c: State) -> object:
    sd = prefixed("module.", c) | {
        "module.fc.weight": const((1000, 2048), 1.0),
        "module.fc.bias": const((1000,), 0),
    }
    return {"epoch": 90, "arch": "resnet50", "state_dict": sd, "best_acc1": torch.tensor(76.1)}


Builder = Callable[[State], object]
LAYOUTS: list[tuple[str, Builder, str]] = [
    ("lightly-bare", lightly_bare, "lightly"),
    ("lightly-simclr", lightly_simclr, "lightly"),
    ("lightly-byol", lightly_byol, "lightly"),
    ("lightly-cli", lightly_cli, "lightly"),
    ("lightly-dino", lightly_dino, "lightly-dino:teacher"),
    ("solo-simclr", solo_simclr, "solo-learn"),
    ("solo-byol", solo_byol, "solo-learn"),
    ("solo-mocov2plus", solo_mocov2plus, "solo-learn"),
    ("vissl", vissl_checkpoint, "vissl"),
    ("vissl-model-state-dict", vissl_model_state_dict, "vissl-model-state-dict"),
    ("dino", dino_full, "dino:teacher"),
    ("swav", swav_checkpoint, "swav"),
    ("swav-hub", swav_hub, "swav"),
    ("barlowtwins", barlowtwins_checkpoint, "barlowtwins"),
    ("barlowtwins-hub", barlowtwins_hub, "torchvision"),
    ("simclr", simclr_state, "simclr"),
    ("simsiam", simsiam_checkpoint, "simsiam"),
    ("dataparallel", dataparallel_checkpoint, "dataparallel"),
]


def assert_equal_backbone(state: Mapping[str, torch.Tensor], expected: State) -> None:
    assert set(state) == set(expected)
    assert all(state[k].dtype == expected[k].dtype and torch.equal(state[k], expected[k]) for k in expected)


@pytest.mark.parametrize(("name", "build", "fmt"), LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_layout_loads_to_the_source_tensors(
    canonical: State, tmp_path: Path, name: str, build: Builder, fmt: str
) -> None:
    path = tmp_path / f"{name}.pth"
    torch.save(build(canonical), path)
    bb = load_checkpoint(path)
    assert bb.source_format == fmt
    assert_equal_backbone(bb.state_dict, canonical)
    assert bb.sha256 == weights_sha256(canonical) and not bb.sobel


def test_every_format_in_the_table_has_a_layout_test() -> None:
    tested = {fmt.split(":")[0] for _, _, fmt in LAYOUTS}
    covered_elsewhere = {
        "deepcluster-bench/pretrain/v1",
        "mmselfsup",
        "mmselfsup-backbone",
        "moco",
    }  # test_load
    assert set(FORMATS) == tested | covered_elsewhere


def test_dino_student_on_request(canonical: State, tmp_path: Path) -> None:
    path = tmp_path / "dino.pth"
    torch.save(dino_full(canonical), path)
    student = load_checkpoint(path, network="student")
    assert student.source_format == "dino:student"
    assert_equal_backbone(student.state_dict, other(canonical))
    assert student.sha256 != load_checkpoint(path).sha256


def test_lightly_dino_student_on_request(canonical: State, tmp_path: Path) -> None:
    path = tmp_path / "ldino.pth"
    torch.save(lightly_dino(canonical), path)
    assert_equal_backbone(load_checkpoint(path, network="student").state_dict, other(canonical))


def test_unknown_network_names_the_choices(canonical: State, tmp_path: Path) -> None:
    path = tmp_path / "dino.pth"
    torch.save(dino_full(canonical), path)
    with pytest.raises(
        CheckpointError, match=r"format 'dino' has no network 'ema'.*\['student', 'teacher'\]"
    ):
        load_checkpoint(path, fmt="dino", network="ema")
    with pytest.raises(CheckpointError, match="no format holds a network 'ema'"):
        load_checkpoint(path, network="ema")


@pytest.mark.parametrize(
    ("name", "build", "fmt"),
    [c for c in LAYOUTS if c[0] in ("lightly-byol", "dino", "vissl", "solo-byol", "swav")],
)
def test_safetensors_of_the_same_layout(
    canonical: State, tmp_path: Path, name: str, build: Builder, fmt: str
) -> None:
    """A safetensors file holding the layout's tensors (nested dicts flattened to dotted keys; fp16)."""
    from safetensors.torch import save_file

    from adapters.detect import flatten

    obj = build(canonical)
    assert isinstance(obj, Mapping)
    flat = {k: v for k, v in flatten(obj).items() if isinstance(v, torch.Tensor)}
    if "state_dict" in obj:  # what `save_file(model.state_dict())` writes: the bare state dict
        flat = {k.removeprefix("state_dict."): v for k, v in flat.items() if k.startswith("state_dict.")}
    tensors = {k: v.half().contiguous() if v.is_floating_point() else v.contiguous() for k, v in flat.items()}
    path = tmp_path / f"{name}.safetensors"
    save_file(tensors, str(path))
    bb = load_checkpoint(path)
    assert bb.source_format == fmt
    assert_equal_backbone(bb.state_dict, canonical)  # fp16 of these constants is exact; canonical is fp32


def test_explicit_format_overrides_detection(canonical: State, tmp_path: Path) -> None:
    path = tmp_path / "backbone_only.pth"
    torch.save({"state_dict": prefixed("backbone.", canonical)}, path)  # fits mmselfsup and solo-learn
    assert load_checkpoint(path).source_format == "mmselfsup"
    assert load_checkpoint(path, fmt="solo-learn").source_format == "solo-learn"
    with pytest.raises(CheckpointError, match=r"moco checkpoint: 318 key\(s\) that no rule accounts for"):
        load_checkpoint(path, fmt="moco")


def test_detect_says_which_format_and_why(
    canonical: State, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "backbone_only.pth"
    torch.save({"state_dict": prefixed("backbone.", canonical)}, path)
    assert main(["--ckpt", str(path), "--detect"]) == 0
    out = capsys.readouterr().out
    assert "format 'mmselfsup' (under 'state_dict') detected: 318 tensors mapped" in out
    assert "also fits 'solo-learn' (under 'state_dict')" in out
    dino = tmp_path / "dino.pth"
    torch.save(dino_full(canonical), dino)
    assert main(["--ckpt", str(dino), "--detect", "--ckpt-key", "student"]) == 0
    out = capsys.readouterr().out
    assert "format 'dino' (at the top level, network 'student') detected" in out
    assert "DINO teacher (the network not chosen; --ckpt-key teacher) (" in out
    assert "metadata read as inert stand-ins, none of its code run: argparse.Namespace" in out


def test_refusal_names_what_was_tried_and_the_closest_unmatched_keys(
    canonical: State, tmp_path: Path
) -> None:
    sd = solo_byol(canonical)
    assert isinstance(sd, dict)
    sd["state_dict"] = sd["state_dict"] | {"new_head.weight": const((10, 2048), 1.0)}
    path = tmp_path / "solo_plus.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert (
        "not a recognised ResNet-50 checkpoint: tried 'torchvision' (at the top level), 'mmselfsup'"
        in message
    )
    assert "closest 'solo-learn' (under 'state_dict'): 318 of 318 canonical keys matched" in message
    assert "unmatched keys ['new_head.weight']" in message


def test_cli_passes_format_and_key(canonical: State, tmp_path: Path) -> None:
    path = tmp_path / "dino.pth"
    torch.save(dino_full(canonical), path)
    out = tmp_path / "student.pth"
    assert (
        main(
            [
                "--ckpt",
                str(path),
                "--ckpt-format",
                "dino",
                "--ckpt-key",
                "student",
                "--to",
                "torchvision",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert_equal_backbone(load_checkpoint(out).state_dict, other(canonical))


def _skipped_svm_argv(ckpt: Path, tmp_path: Path, *extra: str) -> list[str]:
    """run_all on voc07_svm over an empty data root: the skipped row and its checkpoint id are checked."""
    empty = tmp_path / "data"
    empty.mkdir()
    return ["--ckpt", str(ckpt), "--data-root", str(empty), "--work-dir", str(tmp_path / "w"),
            "--benchmarks", "voc07_svm", *extra, "--allow-missing"]


@pytest.mark.parametrize(("name", "build", "fmt"), LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_run_all_accepts_the_layout(
    canonical: State, tmp_path: Path, name: str, build: Builder, fmt: str
) -> None:
    """`run_all.py --ckpt` reads every layout (a missing dataset then makes the one benchmark a skip)."""
    import json

    import run_all

    path = tmp_path / f"{name}.pth"
    torch.save(build(canonical), path)
    argv = _skipped_svm_argv(path, tmp_path)
    assert run_all.main(argv) == 0
    rows = [json.loads(line) for line in (tmp_path / "w" / "results.jsonl").read_text().splitlines()]
    assert [(r["status"], r["checkpoint_sha256"]) for r in rows] == [("skipped", weights_sha256(canonical))]


def test_run_all_passes_format_and_key(canonical: State, tmp_path: Path) -> None:
    import run_all

    path = tmp_path / "dino.pth"
    torch.save(dino_full(canonical), path)
    argv = _skipped_svm_argv(path, tmp_path, "--ckpt-format", "dino", "--ckpt-key", "student")
    assert run_all.main(argv) == 0
    assert weights_sha256(other(canonical)) in (tmp_path / "w" / "results.jsonl").read_text()


def test_a_key_spelled_twice_is_refused_only_where_the_weights_need_it(
    canonical: State, tmp_path: Path
) -> None:
    from adapters.detect import TWICE, flatten

    assert flatten({"a.b": 1, "a": {"b": 2}, "c": {}}) == {"a.b": TWICE, "c": {}}
    fine = {"state_dict": prefixed("backbone.", canonical), "meta": {"x.y": 1, "x": {"y": 2}}}
    torch.save(fine, tmp_path / "fine.pth")
    assert load_checkpoint(tmp_path / "fine.pth").source_format == "mmselfsup"
    bad = {
        "state_dict": prefixed("backbone.", canonical) | {"backbone": {"bn1.weight": canonical["bn1.weight"]}}
    }
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(
        CheckpointError, match=r"non-tensor value\(s\) \(str\) for 1 key\(s\) \['bn1.weight'\]"
    ):
        load_checkpoint(tmp_path / "bad.pth")
