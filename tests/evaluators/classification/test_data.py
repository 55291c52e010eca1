from __future__ import annotations

import torch

from dcbench.distributed import DistInfo
from evaluators.classification.data import val_loader


def test_val_shards_cover_every_sample_once() -> None:
    data = torch.utils.data.TensorDataset(torch.arange(10))
    seen = []
    for rank in range(3):
        dist = DistInfo(rank=rank, world_size=3, device=torch.device("cpu"))
        seen += [int(x) for (batch,) in val_loader(data, 4, dist, 0) for x in batch]
    assert sorted(seen) == list(range(10))
