"""MMSelfSup Sobel layers: the fixed filter, a 1.x re-initialised (random) filter carried with the backbone,
and what stays refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from adapters import CheckpointError, canonical_shapes, load_checkpoint
from adapters.__main__ import main
from adapters.mmseg import to_mmseg
from dcbench.backbone import Sobel, fixed_sobel_filter, weights_sha256

State = dict[str, torch.Tensor]


@pytest.fixture(scope="module")
def sobel_trunk() -> State:
    return {
        k: torch.tensor(i) if k.endswith("num_batches_tracked") else torch.full((), float(i)).expand(s)
        for i, (k, s) in enumerate(canonical_shapes(True).items())
    }


def kaiming_sobel_layer(seed: int) -> State:
    """MMSelfSup 1.x: mmselfsup/models/utils/sobel.py builds `Sobel.sobel = nn.Sequential(grayscale, sobel)`
    and ResNetSobel (mmselfsup/models/backbones/resnet.py) keeps it as `sobel_layer`; mmengine's
    `init_weights()` then applies the backbone's init_cfg (Kaiming on every Conv2d, bias 0) to it too."""
    torch.manual_seed(seed)
    gray, sobel = nn.Conv2d(3, 1, 1), nn.Conv2d(1, 2, 3, padding=1)
    for conv in (gray, sobel):
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(conv.bias)
    layer = nn.Sequential(gray, sobel)
    return {f"sobel.{k}": v.detach() for k, v in layer.state_dict().items()}


def fixed_layer() -> State:
    return {f"sobel.{k}": v for k, v in fixed_sobel_filter().items()}


def mmselfsup1(trunk: State, layer: State, prefix: str = "backbone.sobel_layer.") -> dict[str, object]:
    sd = {f"backbone.{k}": v for k, v in trunk.items()} | {prefix + k: v for k, v in layer.items()}
    return {"meta": {"epoch": 200}, "state_dict": sd | {"loss_weight": torch.full((10,), 0.1)}}


def save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def test_fixed_filter_is_not_carried(sobel_trunk: State, tmp_path: Path) -> None:
    bb = load_checkpoint(save(mmselfsup1(sobel_trunk, fixed_layer()), tmp_path / "fixed.pth"))
    assert bb.sobel and bb.sobel_filter is None and bb.input_filter_kind == "sobel-fixed"
    assert bb.sha256 == weights_sha256(sobel_trunk)


def test_mmselfsup1_random_filter_is_carried_and_applied(sobel_trunk: State, tmp_path: Path) -> None:
    layer = kaiming_sobel_layer(0)
    bb = load_checkpoint(save(mmselfsup1(sobel_trunk, layer), tmp_path / "random.pth"))
    assert bb.input_filter_kind == "sobel-from-checkpoint" and bb.sobel_filter is not None
    assert all(torch.equal(bb.sobel_filter[k.removeprefix("sobel.")], v) for k, v in layer.items())
    x = torch.randn(2, 3, 16, 16)
    gray = nn.functional.conv2d(x, layer["sobel.0.weight"], layer["sobel.0.bias"])
    expected = nn.functional.conv2d(gray, layer["sobel.1.weight"], layer["sobel.1.bias"], padding=1)
    for module in (bb.input_filter(), bb.build_taps().input_filter):
        assert torch.allclose(module(x), expected, atol=1e-6)
    assert not torch.allclose(Sobel()(x), expected)
    fixed = load_checkpoint(save(mmselfsup1(sobel_trunk, fixed_layer()), tmp_path / "fixed.pth"))
    other = load_checkpoint(save(mmselfsup1(sobel_trunk, kaiming_sobel_layer(1)), tmp_path / "other.pth"))
    assert len({bb.sha256, fixed.sha256, other.sha256}) == 3  # the filter is part of the network's id


def test_random_filter_survives_the_exports(sobel_trunk: State, tmp_path: Path) -> None:
    src = save(mmselfsup1(sobel_trunk, kaiming_sobel_layer(0)), tmp_path / "random.pth")
    bb = load_checkpoint(src)
    out = tmp_path / "tv.pth"
    assert main(["--ckpt", str(src), "--to", "torchvision", "--out", str(out)]) == 0
    again = load_checkpoint(out)
    assert again.sha256 == bb.sha256 and again.input_filter_kind == "sobel-from-checkpoint"
    meta = to_mmseg(bb, allow_sobel=True)["meta"]
    assert meta["input_filter"] == "sobel-from-checkpoint" and meta["weights_sha256"] == bb.sha256
    assert meta["file_sha256"] == bb.file_sha256
    assert all(torch.equal(meta["sobel_filter"][k], v) for k, v in (bb.sobel_filter or {}).items())


def test_mmselfsup0_layer_must_be_the_fixed_filter(sobel_trunk: State, tmp_path: Path) -> None:
    """0.x keeps `sobel_layer` in DeepCluster itself (outside the backbone), never re-initialised."""
    path = save(mmselfsup1(sobel_trunk, kaiming_sobel_layer(0), prefix="sobel_layer."), tmp_path / "0x.pth")
    with pytest.raises(
        CheckpointError, match="not the fixed grayscale.Sobel filter.*never re-initialises it"
    ):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"sobel.1.weight": torch.zeros(2, 1, 5, 5)}, "not a grayscale (1x1, 3->1) + Sobel (3x3, 1->2) pair"),
        ({"sobel.0.bias": None}, "found keys ['sobel.0.weight', 'sobel.1.bias', 'sobel.1.weight']"),
        ({"sobel.0.weight": torch.full((1, 3, 1, 1), float("nan"))}, "not a grayscale"),
        ({"sobel.2.weight": torch.zeros(1)}, "not a grayscale"),
    ],
    ids=["wrong-shape", "missing-bias", "not-finite", "extra-conv"],
)
def test_ill_shaped_sobel_layers_stay_refused(
    sobel_trunk: State, tmp_path: Path, change: dict[str, torch.Tensor | None], fragment: str
) -> None:
    layer = {k: v for k, v in (kaiming_sobel_layer(0) | change).items() if v is not None}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(save(mmselfsup1(sobel_trunk, layer), tmp_path / "bad.pth"))
    assert fragment in str(info.value)


def test_engines_with_only_the_fixed_filter_refuse_a_carried_one() -> None:
    """Our mmdet / detectron2 Sobel backbones apply the fixed filter: a carried one is refused, loudly
    (the mmseg export carries it in its meta for other readers; our segmentation runner refuses it)."""
    from dataclasses import replace

    from adapters.detectron2 import to_detectron2
    from adapters.errors import SobelExportError
    from adapters.load import require_fixed_sobel
    from adapters.mmdet import to_mmdet
    from dcbench.backbone import Backbone, build_resnet50

    state = build_resnet50(sobel=True).state_dict()
    fixed = Backbone(state_dict=state, sobel=True, sha256="0" * 64, source_format="test")
    carried = replace(fixed, sobel_filter={k: v + 1 for k, v in fixed_sobel_filter().items()})
    for export in (lambda b: to_detectron2(b, allow_sobel=True), lambda b: to_mmdet(b, "C4"),
                   lambda b: require_fixed_sobel(b, "mmsegmentation") or True):
        assert export(fixed)
        with pytest.raises(SobelExportError, match="carries its own"):
            export(carried)
