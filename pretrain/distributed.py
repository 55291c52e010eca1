"""torch.distributed plumbing only the pretrainer needs: sharded-then-gathered features,
broadcasts, and a cross-rank agreement check.

The process group, `DistInfo`, `barrier` and `shutdown` are the shared ones of
`dcbench.distributed` (re-exported here). Single-process runs (no WORLD_SIZE in the environment)
use the same code paths with world size 1.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.distributed as dist

from dcbench.distributed import DistInfo, barrier, init_distributed, shutdown

GATHER_CHUNK_ROWS = 16384  # bounds rank 0's device memory while gathering features
__all__ = [
    "DistInfo", "all_mean", "barrier", "broadcast_labels", "broadcast_module", "digest", "gather_digests",
    "gather_rows", "init_distributed", "shard_indices", "shutdown",
]


def shard_indices(num: int, info: DistInfo) -> np.ndarray:
    """Rank r's strided share of range(num), padded by wrapping so every rank has the same count."""
    per_rank = -(-num // info.world_size)
    padded = np.resize(np.arange(num), per_rank * info.world_size)
    return padded[info.rank::info.world_size]


def gather_rows(local: torch.Tensor, num: int, info: DistInfo) -> np.ndarray | None:
    """Inverse of `shard_indices`: rank 0 gets the full [num, d] float32 array, others None.

    Rank 0 preallocates the one output array and writes every gathered chunk straight into its
    strided rows, so its host memory is one copy of the features plus one chunk per rank.
    """
    if not info.distributed:
        return local.cpu().numpy()[:num]
    local = local.to(info.device)
    world = info.world_size
    dtype = local[:0].cpu().numpy().dtype
    full = np.empty((len(local) * world, local.shape[1]), dtype=dtype) if info.is_main else None
    for start in range(0, len(local), GATHER_CHUNK_ROWS):
        chunk = local[start:start + GATHER_CHUNK_ROWS].contiguous()
        bucket = [torch.empty_like(chunk) for _ in range(world)] if info.is_main else None
        dist.gather(chunk, bucket, dst=0)
        if full is not None and bucket is not None:
            stop = start + len(chunk)
            for r, piece in enumerate(bucket):
                full[start * world + r:stop * world:world] = piece.cpu().numpy()
    return None if full is None else full[:num]


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
