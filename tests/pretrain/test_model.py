from __future__ import annotations

import math

import pytest
import torch

from dcbench.config import ConfigError, config_hash, replace
from pretrain.config import DEEPCLUSTER_R50, TINY
from pretrain.model import DeepClusterModel, build_model, build_optimizer, reset_head_momentum, set_lr


def test_head_reset_and_momentum_groups() -> None:
    torch.manual_seed(0)
    model = DeepClusterModel(num_clusters=50, sobel=True)
    opt = build_optimizer(model, lr=0.1, momentum=0.9, head_momentum=0.0, weight_decay=1e-5)
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.0]
    assert opt.param_groups[1]["params"] == list(model.head.parameters())
    x = torch.randn(2, 3, 32, 32)
    assert model.features(x).shape == (2, 2048) and model(x).shape == (2, 50)
    torch.nn.functional.cross_entropy(model(x), torch.tensor([1, 2])).backward()
    opt.step()
    assert model.trunk.conv1.weight in opt.state  # trunk keeps its momentum buffer
    model.reset_head(0.01, seed=4)
    w = model.head.weight.detach().clone()
    assert model.head.bias.abs().sum() == 0 and abs(w.std().item() - 0.01) < 0.002
    model.reset_head(0.01, seed=4)
    torch.testing.assert_close(model.head.weight, w)
    opt.state[model.head.weight]["momentum_buffer"] = torch.ones_like(w)
    reset_head_momentum(opt, model.head)
    assert model.head.weight not in opt.state and model.trunk.conv1.weight in opt.state


@pytest.mark.parametrize(("conv_init", "fan"), [("kaiming_fan_in", "in"), ("kaiming_fan_out", "out")])
def test_conv_init_draws_kaiming_normal_in_the_configured_mode(conv_init: str, fan: str) -> None:
    torch.manual_seed(0)
    trunk = build_model(replace(TINY, conv_init=conv_init)).trunk
    # conv1 (3 -> 64, 7x7) and a 1x1 expansion (64 -> 256): fan_in and fan_out differ by 21x and 4x
    for conv in (trunk.conv1, trunk.layer1[0].conv3, trunk.layer4[0].downsample[0]):
        out_ch, in_ch, kh, kw = conv.weight.shape
        fan_size = (in_ch if fan == "in" else out_ch) * kh * kw
        expected = math.sqrt(2.0 / fan_size)
        assert abs(conv.weight.std().item() / expected - 1) < 0.05, (conv_init, conv.weight.shape)
    bn = trunk.layer1[0].bn3
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))
    assert torch.equal(bn.bias, torch.zeros_like(bn.bias))


def test_conv_init_is_a_config_field_that_changes_the_hash() -> None:
    assert DEEPCLUSTER_R50.conv_init == "kaiming_fan_in"  # OpenSelfSup ResNet.init_weights
    other = replace(DEEPCLUSTER_R50, conv_init="kaiming_fan_out")
    assert config_hash(other) != config_hash(DEEPCLUSTER_R50)
    with pytest.raises(ConfigError, match="conv_init"):
        replace(DEEPCLUSTER_R50, conv_init="xavier")


def test_resnet18_arch_builds_a_512_d_trunk_with_the_configured_init() -> None:
    torch.manual_seed(0)
    model = build_model(replace(TINY, arch="resnet18", sobel=True))
    x = torch.randn(2, 3, 32, 32)
    assert model.features(x).shape == (2, 512) and model(x).shape == (2, TINY.num_clusters)
    conv = model.trunk.layer2[0].conv1  # 64 -> 128, 3x3
    expected = math.sqrt(2.0 / (conv.weight.shape[1] * 9))  # kaiming fan_in, as for resnet50
    assert abs(conv.weight.std().item() / expected - 1) < 0.05
    assert model.trunk.conv1.in_channels == 2


def test_head_lr_multiplier_applies_to_the_head_group_only() -> None:
    model = DeepClusterModel(num_clusters=5, sobel=False)
    opt = build_optimizer(model, 0.01, momentum=0.9, head_momentum=0.0, weight_decay=1e-5, head_lr_mult=0.15)
    assert [g["lr"] for g in opt.param_groups] == [0.01, pytest.approx(0.0015)]
    set_lr(opt, 0.001, 0.15)  # a new epoch's lr keeps the ratio
    assert [g["lr"] for g in opt.param_groups] == [0.001, pytest.approx(0.00015)]
    assert [g["lr"] for g in build_optimizer(model, 0.1, 0.9, 0.0, 1e-5).param_groups] == [0.1, 0.1]
