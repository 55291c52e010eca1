from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import torch
import torchvision

from adapters import CheckpointError, canonical_shapes, load_checkpoint
from adapters.__main__ import main
from adapters.convert import Converted
from adapters.convert import convert_state as convert_with
from adapters.formats import FORMATS, PRETRAIN_FORMAT
from adapters.keys import Rule, map_keys
from dcbench.backbone import Sobel, weights_sha256
from dcbench.fileio import sha256_file

State = dict[str, torch.Tensor]


@pytest.fixture(scope="module")
def tv_state() -> State:
    """A torchvision ResNet-50 state dict (with fc) whose every tensor is random, incl. BN stats."""
    torch.manual_seed(0)
    state = torchvision.models.resnet50(weights=None).state_dict()
    gen = torch.Generator().manual_seed(1)
    return {
        k: torch.randn(v.shape, generator=gen) if v.is_floating_point()
        else torch.randint(0, 1000, v.shape, generator=gen)
        for k, v in state.items()
    }


def rules_of(fmt: str) -> tuple[Rule, ...]:
    return FORMATS[fmt].networks[FORMATS[fmt].default_network]


def convert_state(state: Mapping[str, object], fmt: str) -> Converted:
    return convert_with(state, rules_of(fmt), fmt)


def trunk(state: State, sobel: bool) -> State:
    out = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if sobel:
        out["conv1.weight"] = out["conv1.weight"][:, :2].clone()
    return out


def sobel_layer(prefix: str) -> State:
    s = Sobel()
    return {
        f"{prefix}sobel.0.weight": s.gray.clone(), f"{prefix}sobel.0.bias": torch.zeros(1),
        f"{prefix}sobel.1.weight": s.sobel.clone(), f"{prefix}sobel.1.bias": torch.zeros(2),
    }


def lazy(shape: torch.Size) -> torch.Tensor:
    """A zero tensor of `shape` stored as one element (keeps the fake files small)."""
    return torch.zeros(()).expand(shape)


def pretrain_ckpt(state: State, sobel: bool) -> dict[str, object]:
    return {
        "format": PRETRAIN_FORMAT, "epoch": 3, "config_name": "deepcluster_r50_tiny", "config": {"lr": 0.05},
        "sobel": sobel, "backbone": trunk(state, sobel),
        "head": {"weight": torch.randn(10, 2048), "bias": torch.zeros(10)},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.05, "params": [0, 1]}]},
        "rng": {"torch": torch.get_rng_state()}, "assignments": torch.arange(20) % 10,
    }


def mmselfsup1_ckpt(state: State, sobel: bool) -> dict[str, object]:
    sd = {f"backbone.{k}": v for k, v in trunk(state, sobel).items()}
    sd |= sobel_layer("backbone.sobel_layer.") if sobel else {}
    sd |= {"head.fc_cls.weight": lazy(torch.Size([10000, 2048])), "head.fc_cls.bias": torch.zeros(10000),
           "loss_weight": torch.full((10000,), 1e-4)}
    return {"meta": {"epoch": 200, "mmengine_version": "0.7.0"}, "state_dict": sd}


def mmselfsup0_ckpt(state: State, sobel: bool) -> dict[str, object]:
    sd = {f"backbone.{k}": v for k, v in trunk(state, sobel).items()}
    sd |= sobel_layer("sobel_layer.") if sobel else {}
    sd |= {"head.fc_cls.weight": lazy(torch.Size([10000, 2048])), "head.fc_cls.bias": torch.zeros(10000),
           "head.criterion.weight": torch.full((10000,), 1e-4)}
    return {"meta": {"epoch": 200, "mmcv_version": "1.4.0"}, "state_dict": sd}


def extracted_ckpt(state: State, sobel: bool) -> dict[str, object]:
    sd = trunk(state, sobel) | (sobel_layer("sobel_layer.") if sobel else {})
    return {"state_dict": sd, "author": "MMSelfSup"}


def moco_ckpt(state: State, sobel: bool) -> dict[str, object]:
    q = trunk(state, sobel) | {"fc.0.weight": lazy(torch.Size([2048, 2048])), "fc.0.bias": torch.zeros(2048),
                               "fc.2.weight": lazy(torch.Size([128, 2048])), "fc.2.bias": torch.zeros(128)}
    sd = {f"module.encoder_q.{k}": v for k, v in q.items()}
    sd |= {f"module.encoder_k.{k}": lazy(v.shape) for k, v in q.items()}
    sd |= {"module.queue": lazy(torch.Size([128, 65536])), "module.queue_ptr": torch.zeros(1).long()}
    optimizer = {"state": {}, "param_groups": []}
    return {"epoch": 200, "arch": "resnet50", "state_dict": sd, "optimizer": optimizer}


Builder = Callable[[State, bool], object]
CASES: list[tuple[str, Builder, bool, str, bool]] = [
    # (id, builder, sobel, expected source_format, legacy (non-zip) torch.save)
    ("pretrain", pretrain_ckpt, False, PRETRAIN_FORMAT, False),
    ("pretrain-sobel", pretrain_ckpt, True, PRETRAIN_FORMAT, False),
    ("torchvision-fc", lambda s, _: dict(s), False, "torchvision", False),
    ("torchvision-nofc", lambda s, _: trunk(s, False), False, "torchvision", False),
    ("mmselfsup1", mmselfsup1_ckpt, False, "mmselfsup", False),
    ("mmselfsup1-sobel", mmselfsup1_ckpt, True, "mmselfsup", False),
    ("mmselfsup0-sobel-legacy", mmselfsup0_ckpt, True, "mmselfsup", True),
    ("mmselfsup-extracted-sobel", extracted_ckpt, True, "mmselfsup-backbone", False),
    ("moco", moco_ckpt, False, "moco", False),
]


def save(obj: object, path: Path, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize(("name", "build", "sobel", "fmt", "legacy"), CASES, ids=[c[0] for c in CASES])
def test_round_trip_gives_identical_canonical_tensors(
    tv_state: State, tmp_path: Path, name: str, build: Builder, sobel: bool, fmt: str, legacy: bool
) -> None:
    path = save(build(tv_state, sobel), tmp_path / f"{name}.pth", legacy)
    bb = load_checkpoint(path)
    expected = trunk(tv_state, sobel)
    assert list(bb.state_dict) == list(canonical_shapes(sobel))
    assert len(bb.state_dict) == 318
    assert all(torch.equal(bb.state_dict[k], expected[k]) for k in expected)
    assert (bb.sobel, bb.source_format, bb.file_sha256) == (sobel, fmt, sha256_file(path))
    assert bb.sha256 == weights_sha256(expected) and bb.sobel_filter is None
    assert bb.pretrain_config == ("deepcluster_r50_tiny" if fmt == PRETRAIN_FORMAT else None)
    if name == "mmselfsup1-sobel":
        bb.build_resnet()  # loads strictly


@pytest.mark.parametrize(("name", "build", "sobel", "fmt", "legacy"), CASES, ids=[c[0] for c in CASES])
def test_every_source_key_is_mapped_or_dropped_by_a_named_rule(
    tv_state: State, name: str, build: Builder, sobel: bool, fmt: str, legacy: bool
) -> None:
    obj = build(tv_state, sobel)
    assert isinstance(obj, Mapping)
    state = obj.get("backbone", obj.get("state_dict", obj))
    keymap = map_keys(state, rules_of(fmt))
    assert not keymap.unmatched and not keymap.collisions
    assert set(keymap.mapped) | set(keymap.dropped) == set(state)
    assert sorted(keymap.mapped.values()) == sorted(canonical_shapes(sobel))
    assert all(rule.name for rule in keymap.dropped.values())


def test_map_keys_reports_unmatched_and_collisions() -> None:
    rules = (Rule("a", "a.", "x."), Rule("b", "b.", "x."), Rule("drop c", "c", None, exact=True))
    keymap = map_keys(["a.w", "b.w", "c", "c.d", "a.v"], rules)
    assert keymap.mapped == {"a.w": "x.w", "b.w": "x.w", "a.v": "x.v"}
    assert keymap.collisions == {"x.w": ("a.w", "b.w")}
    assert keymap.unmatched == ("c.d",)
    assert [r.name for r in keymap.dropped.values()] == ["drop c"]


def expect_error(state: Mapping[str, object], fmt: str, *fragments: str) -> None:
    with pytest.raises(CheckpointError) as info:
        convert_state(state, fmt)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_key(tv_state: State) -> None:
    state = {k: v for k, v in tv_state.items() if k != "layer3.2.bn2.running_var"}
    expect_error(state, "torchvision", "missing 1 key(s)", "'layer3.2.bn2.running_var'")


def test_extra_keys(tv_state: State) -> None:
    expect_error(tv_state | {"layer1.0.conv4.weight": torch.zeros(1)}, "torchvision",
                 "unexpected 1 key(s)", "'layer1.0.conv4.weight'")
    expect_error(tv_state | {"layer5.0.conv1.weight": torch.zeros(1)}, "torchvision",
                 "no rule accounts for", "'layer5.0.conv1.weight'")
    mm = {f"backbone.{k}": v for k, v in trunk(tv_state, False).items()}
    expect_error(mm | {"momentum_encoder.conv1.weight": torch.zeros(1)}, "mmselfsup",
                 "no rule accounts for", "'momentum_encoder.conv1.weight'")


def test_wrong_shape_and_dtype(tv_state: State) -> None:
    expect_error(tv_state | {"layer2.0.conv1.weight": torch.zeros(128, 256, 1, 2)}, "torchvision",
                 "wrong shape", "layer2.0.conv1.weight: expected [128, 256, 1, 1], got [128, 256, 1, 2]")
    expect_error(tv_state | {"conv1.weight": torch.zeros(64, 4, 7, 7)}, "torchvision",
                 "conv1.weight has shape")
    expect_error(tv_state | {"bn1.num_batches_tracked": torch.tensor(1.0)}, "torchvision",
                 "wrong dtype", "'bn1.num_batches_tracked'")
    expect_error(tv_state | {"bn1.weight": "oops"}, "torchvision", "non-tensor", "'bn1.weight'")


def test_sobel_layer_must_be_the_fixed_filter(tv_state: State) -> None:
    good = {f"backbone.{k}": v for k, v in trunk(tv_state, True).items()} | sobel_layer("sobel_layer.")
    convert_state(good, "mmselfsup")
    expect_error(good | {"sobel_layer.sobel.1.bias": torch.ones(2)}, "mmselfsup",
                 "not the fixed grayscale+Sobel filter", "never re-initialises it")
    rgb = {f"backbone.{k}": v for k, v in trunk(tv_state, False).items()} | sobel_layer("sobel_layer.")
    expect_error(rgb, "mmselfsup", "Sobel layer", "3-channel conv1")


def test_collision_is_an_error(tv_state: State) -> None:
    aliased = (*rules_of("torchvision"), Rule("alias of layer1", "alias.", "layer1."))
    state = tv_state | {"alias.0.conv1.weight": tv_state["layer1.0.conv1.weight"]}
    with pytest.raises(CheckpointError) as info:
        convert_with(state, aliased, "aliased")
    assert "maps several keys onto one name" in str(info.value)
    assert "layer1.0.conv1.weight <- ['layer1.0.conv1.weight', 'alias.0.conv1.weight']" in str(info.value)


def test_every_kind_of_key_mismatch_is_reported_at_once(tv_state: State) -> None:
    """An extra key no longer hides the missing key and the wrong shape behind it (issue 18)."""
    state = {k: v for k, v in tv_state.items() if k not in ("layer3.2.bn2.running_var", "bn1.bias")}
    state |= {"layer5.0.conv1.weight": torch.zeros(1), "layer1.0.conv4.weight": torch.zeros(1),
              "layer2.0.conv1.weight": torch.zeros(128, 256, 1, 2),
              "bn1.num_batches_tracked": torch.tensor(1.0)}
    with pytest.raises(CheckpointError) as info:
        convert_state(state, "torchvision")
    message = str(info.value)
    for fragment in ("1 key(s) that no rule accounts for ['layer5.0.conv1.weight']",
                     "missing 2 key(s)", "'layer3.2.bn2.running_var'", "'bn1.bias'",
                     "unexpected 1 key(s) ['layer1.0.conv4.weight']",
                     "wrong shape for 1 key(s)", "layer2.0.conv1.weight: expected [128, 256, 1, 1]",
                     "wrong dtype", "'bn1.num_batches_tracked'"):
        assert fragment in message


def test_long_key_lists_show_the_first_few_and_a_count(tv_state: State) -> None:
    state = {k: v for k, v in tv_state.items() if not k.startswith("layer4.")}
    with pytest.raises(CheckpointError) as info:
        convert_state(state, "torchvision")
    missing = [k for k in tv_state if k.startswith("layer4.")]
    assert f"missing {len(missing)} key(s)" in str(info.value)
    assert f"... and {len(missing) - 8} more" in str(info.value)


def test_same_weights_get_the_same_id_whatever_else_the_file_holds(tv_state: State, tmp_path: Path) -> None:
    """Issue 18: RNG state, epoch or optimiser in the file change its hash, not the checkpoint id."""
    one = pretrain_ckpt(tv_state, False)
    two = one | {"epoch": 4, "rng": {"torch": torch.ByteTensor(list(range(7)))}}
    a, b = load_checkpoint(save(one, tmp_path / "a.pth")), load_checkpoint(save(two, tmp_path / "b.pth"))
    c = load_checkpoint(save(trunk(tv_state, False), tmp_path / "c.pth"))  # same tensors, other format
    assert a.file_sha256 != b.file_sha256 != c.file_sha256
    assert a.sha256 == b.sha256 == c.sha256 == weights_sha256(trunk(tv_state, False))
    changed = one | {"backbone": trunk(tv_state, False) | {"bn1.bias": tv_state["bn1.bias"] + 1e-3}}
    assert load_checkpoint(save(changed, tmp_path / "d.pth")).sha256 != a.sha256


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "is empty (0 bytes)"),
        (os.urandom(4096), "not a readable torch checkpoint"),
        (b"hello, this is text\n", "not a readable torch checkpoint"),
    ],
    ids=["empty", "random-bytes", "text"],
)
def test_non_checkpoint_files(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=re.escape(fragment)):
        load_checkpoint(path)


def test_truncated_file(tv_state: State, tmp_path: Path) -> None:
    data = save(trunk(tv_state, False), tmp_path / "full.pth").read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(path)


class NotAllowed:
    """An arbitrary class: torch.load(weights_only=True) must refuse to unpickle it."""


def test_pickle_needing_weights_only_false(tmp_path: Path) -> None:
    path = save({"state_dict": {"conv1.weight": torch.zeros(1)}, "extra": NotAllowed()}, tmp_path / "p.pth")
    with pytest.raises(CheckpointError, match="weights_only=True") as info:
        load_checkpoint(path)
    assert "NotAllowed" in str(info.value)


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        ({"a": 1, "b": "text", "c": [1, 2]}, "not a recognised ResNet-50 checkpoint"),
        (torch.zeros(3), "holds a Tensor, expected a dict"),
        ({"state_dict": {"x.weight": torch.zeros(1)}},
         r"closest 'mmselfsup' \(under 'state_dict'\): 0 of 318 canonical keys matched; "
         r"unmatched keys \['x.weight'\]"),
        ({"state_dict": [1, 2]}, "'state_dict' is a list, expected a dict of named tensors"),
        ({"format": "deepcluster-bench/pretrain/v9"}, "unsupported checkpoint format"),
    ],
    ids=["dict-of-non-tensors", "tensor", "unknown-keys", "state-dict-list", "format-version"],
)
def test_unrecognised_content(tmp_path: Path, obj: object, fragment: str) -> None:
    path = save(obj, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match=fragment) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_pretrain_sobel_flag_must_match_conv1(tv_state: State, tmp_path: Path) -> None:
    path = save(pretrain_ckpt(tv_state, False) | {"sobel": True}, tmp_path / "p.pth")
    with pytest.raises(CheckpointError, match="says sobel=True but conv1 implies sobel=False"):
        load_checkpoint(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "nope.pth")


def test_cli_writes_every_target(tv_state: State, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = save(moco_ckpt(tv_state, False), tmp_path / "moco.pth")
    for target, name in (("torchvision", "tv.pth"), ("detectron2", "d2.pkl"), ("mmseg", "seg.pth")):
        assert main(["--ckpt", str(src), "--to", target, "--out", str(tmp_path / name)]) == 0
        assert (tmp_path / name).stat().st_size > 90_000_000
    again = load_checkpoint(tmp_path / "tv.pth")
    assert all(torch.equal(again.state_dict[k], v) for k, v in trunk(tv_state, False).items())
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d2.pkl", "moco.pth", "seg.pth", "tv.pth"]


def test_cli_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00" * 10)
    assert main(["--ckpt", str(bad), "--to", "mmseg", "--out", str(tmp_path / "o.pth")]) == 1
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "o.pth").exists()


def test_a_resnet18_pretrain_checkpoint_is_refused_by_name(tmp_path: Path) -> None:
    """The learning check's arch option: its checkpoints must never reach the ResNet-50 evaluators."""
    small = torchvision.models.resnet18(weights=None)
    small.fc = torch.nn.Identity()
    obj = {**pretrain_ckpt({}, sobel=False), "config": {"arch": "resnet18"},
           "backbone": {k: lazy(v.shape) for k, v in small.state_dict().items()},
           "head": {"weight": torch.randn(10, 512), "bias": torch.zeros(10)}}
    path = save(obj, tmp_path / "r18.pth")
    with pytest.raises(CheckpointError, match=r"resnet18 trunk .*ResNet-50 trunks only"):
        load_checkpoint(path)
