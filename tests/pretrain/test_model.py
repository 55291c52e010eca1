from __future__ import annotations

import torch

from pretrain.model import DeepClusterModel, build_optimizer, reset_head_momentum


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
