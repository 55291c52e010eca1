from __future__ import annotations

import pytest
import torch
from torch import nn

from dcbench.distributed import DistInfo
from evaluators.classification import loop
from evaluators.classification.data import train_loader, val_loader

CPU = DistInfo(0, 1, torch.device("cpu"))


def test_topk_counts_cap_at_the_class_count() -> None:
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.05], [0.2, 0.3, 0.5]])
    target = torch.tensor([1, 1, 0])
    assert loop.topk_correct(logits, target).tolist() == [1.0, 3.0]  # top-5 caps at 3 classes


def _data() -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 4, generator=g)
    return torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())


def test_train_epochs_follow_the_schedule_and_call_back_after_each_epoch() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD([{"params": list(model.parameters()), "initial_lr": 0.1}], lr=0.1)
    loader = train_loader(_data(), 8, CPU, seed=0, num_workers=0)
    seen: list[tuple[int, float, float]] = []
    plan = loop.EpochPlan(epochs=3, milestones=(2,), gamma=0.5, seed=0, label="toy", progress=False)
    loop.train_epochs(model, lambda x, y: nn.functional.cross_entropy(model(x), y), opt, loader, plan,
                      start=1, dist=CPU, after_epoch=lambda done, loss: seen.append(
                          (done, loss, opt.param_groups[0]["lr"])))
    assert [(done, lr) for done, _, lr in seen] == [(2, 0.1), (3, 0.05)]  # epoch 0 was done already
    assert all(loss > 0 for _, loss, _ in seen)


def test_evaluate_counts_each_named_output_over_the_split() -> None:
    data = _data()

    def logits_of(x: torch.Tensor) -> dict[str, torch.Tensor]:
        right = (x[:, :1] > 0).long().squeeze(1)
        return {"right": nn.functional.one_hot(right, 2).float(), "wrong": 1.0 - nn.functional.one_hot(
            right, 2).float()}

    metrics = loop.evaluate(nn.Identity(), logits_of, ("right", "wrong"), val_loader(data, 5, CPU, 0), CPU,
                            False, "eval")
    assert metrics == {"right": {"top1": 100.0, "top5": 100.0}, "wrong": {"top1": 0.0, "top5": 100.0}}
    empty = torch.utils.data.TensorDataset(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        loop.evaluate(nn.Identity(), logits_of, ("right",), val_loader(empty, 5, CPU, 0), CPU, False, "eval")


def test_deterministic_mode_is_restored() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    with loop.deterministic_mode(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic
    assert torch.are_deterministic_algorithms_enabled() == before


@pytest.mark.parametrize("samples", [24, 26, 22])  # whole groups, a 2-sample tail, a 6-sample tail
def test_accumulated_micro_batches_step_as_the_whole_batch(samples: int) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(samples, 4, generator=g)
    data = torch.utils.data.TensorDataset(x, (x[:, 1] > 0).long())
    weights = []
    for batch, accum in ((8, 1), (4, 2), (2, 4)):
        torch.manual_seed(0)
        model = nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        loader = train_loader(data, batch, CPU, seed=0, num_workers=0)
        loader.sampler.set_epoch(0)
        start = torch.cat([p.detach().flatten() for p in model.parameters()])
        loop.train_epoch(model, lambda x, y, m=model: nn.functional.cross_entropy(m(x), y), opt, loader, CPU,
                         False, "toy", accum_steps=accum)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        assert not torch.equal(weights[-1], start)  # it trained
    assert all(torch.allclose(w, weights[0], atol=1e-6, rtol=0) for w in weights[1:])


def test_micro_batch_splits_the_total_over_processes_and_steps() -> None:
    four = DistInfo(0, 4, torch.device("cpu"))
    assert loop.micro_batch(256, CPU) == 256 and loop.micro_batch(256, four, 2) == 32
    with pytest.raises(ValueError, match=r"256 is not divisible by the world size 4 x accum_steps 3 = 12"):
        loop.micro_batch(256, four, 3)
    with pytest.raises(ValueError, match="at least 1"):
        loop.micro_batch(256, CPU, 0)
