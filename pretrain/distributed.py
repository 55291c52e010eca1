"""torch.distributed plumbing only the pretrainer needs: sharded-then-gathered features,
broadcasts, and a cross-rank agreement check.

The process group, `DistInfo`, `barrier`, `shutdown` and the strided shard / preallocated gather
(`shard_indices`, `gather_rows`) are the shared ones of `dcbench.distributed` (re-exported here).
Single-process runs (no WORLD_SIZE in the environment) use the same code paths with world size 1.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.distributed as dist

from dcbench.distributed import (
    GATHER_CHUNK_ROWS,
    DistInfo,
    barrier,
    gather_rows,
    init_distributed,
    shard_indices,
    shutdown,
)

__all__ = [
    "GATHER_CHUNK_ROWS", "DistInfo", "all_mean", "barrier", "broadcast_labels", "broadcast_module", "digest",
    "gather_digests", "gather_rows", "init_distributed", "shard_indices", "shutdown",
]


def broadcast_labels(labels: np.ndarray | None, num: int, info: DistInfo) -> np.ndarray:
    """Rank 0's int64 labels on every rank."""
    if not info.distributed:
        assert labels is not None
        return labels
    buf = torch.from_numpy(labels).to(info.device) if info.is_main else torch.empty(
        num, dtype=torch.int64, device=info.device)
    dist.broadcast(buf, src=0)
    return buf.cpu().numpy()


def broadcast_module(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers of `module` to every rank, in place."""
    if not info.distributed:
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def all_mean(value: float, info: DistInfo) -> float:
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def digest(*arrays: np.ndarray | torch.Tensor) -> str:
    h = hashlib.sha256()
    for a in arrays:
        arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def gather_digests(local: str, info: DistInfo) -> list[str]:
    """Every rank's digest (same list on every rank); used to prove the ranks agree."""
    if not info.distributed:
        return [local]
    out: list[str | None] = [None] * info.world_size
    dist.all_gather_object(out, local)
    return [str(x) for x in out]
