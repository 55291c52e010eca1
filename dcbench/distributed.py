"""torch.distributed plumbing shared by the pretrainer, the classification and the SVM evaluators.

Under torchrun (WORLD_SIZE > 1 in the environment) `init_distributed` joins or creates the
default process group (nccl on CUDA, gloo on the CPU); a plain single process uses the same code
paths with world size 1, where every helper here is the identity.

Sharded work: `shard_indices` / `gather_rows` (strided rows, the pretrainer's re-clustering) and
`batch_bounds` / `gather_ranges` (contiguous whole batches, the cached feature extraction) share one
chunked gather: rank 0 writes each received chunk straight into ONE preallocated output array (a
memory map for the feature cache), so its memory is one copy of the result plus one chunk per rank.
`on_main` runs a step on rank 0 only (the SVM solve) and hands its result, or its error, to the others.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn

T = TypeVar("T")
GATHER_CHUNK_ROWS = 16384  # gather_rows: bounds rank 0's device memory while gathering features
GATHER_CHUNK_BYTES = 64 * 2**20  # gather_ranges: bytes of one rank's chunk (rank 0 holds world of them)
MAIN_WAIT = datetime.timedelta(hours=24)  # on_main: how long the other ranks wait for rank 0's step


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    device: torch.device
    owns_group: bool = False  # True when init_distributed created the process group (see shutdown)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _local_cuda(local_rank: int) -> torch.device:
    return torch.device(f"cuda:{local_rank % max(1, torch.cuda.device_count())}")


def init_distributed(device: torch.device | None = None) -> DistInfo:
    """Join (or create, from torchrun's WORLD_SIZE / LOCAL_RANK) the default process group.

    `device` is the run's device; under torchrun a CUDA device becomes this process's
    cuda:LOCAL_RANK. None picks it: cuda:LOCAL_RANK when CUDA is available, else the CPU (the
    pretrainer). The backend follows the device: nccl on CUDA, gloo on the CPU. With a given
    device and no WORLD_SIZE > 1 the run is one process even if a group exists (the evaluators);
    with device None an existing group is joined (the pretrainer).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    picked = device is None
    if device is None:
        device = _local_cuda(local_rank) if torch.cuda.is_available() else torch.device("cpu")
    elif world > 1 and device.type == "cuda":
        device = _local_cuda(local_rank)
    if device.type == "cuda" and (picked or world > 1):
        torch.cuda.set_device(device)
    owns = False
    if world > 1 and not tdist.is_initialized():
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    if tdist.is_initialized() and (world > 1 or picked):
        return DistInfo(tdist.get_rank(), tdist.get_world_size(), device, owns)
    return DistInfo(0, 1, device, owns)


def shutdown(info: DistInfo) -> None:
    """Destroy the process group if `init_distributed` created it."""
    if info.owns_group and tdist.is_initialized():
        tdist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        tdist.barrier()


def on_main_rank(work: Callable[[], object]) -> None:
    """Run `work` on rank 0 only (`on_main`); under torchrun the other ranks wait for it and get its
    error, if any, as a RuntimeError.

    Joins the process group run_all made (or makes and destroys its own), so a later
    `init_distributed` picks its own backend.
    """
    info = init_distributed(torch.device("cpu"))
    try:
        on_main(work, info)
    finally:
        shutdown(info)


def reduce_sum(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (a copy; identity in one process)."""
    out = value.detach().clone()
    if info.distributed:
        tdist.all_reduce(out)
    return out


def per_rank_batch(total: int, info: DistInfo) -> int:
    if total % info.world_size:
        raise ValueError(f"total batch size {total} is not divisible by the world size {info.world_size}")
    return total // info.world_size


def wrap_ddp(module: nn.Module, info: DistInfo) -> nn.Module:
    """DistributedDataParallel when distributed, with SyncBN on GPUs (as the references use); else as is.

    torch's SyncBatchNorm runs on GPUs only, so a CPU (gloo) run keeps per-process BN statistics.
    """
    if not info.distributed:
        return module
    if info.device.type != "cuda":
        return nn.parallel.DistributedDataParallel(module)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return nn.parallel.DistributedDataParallel(synced, device_ids=[info.device.index])


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def shard_indices(num: int, info: DistInfo) -> np.ndarray:
    """Rank r's strided share of range(num), padded by wrapping so every rank has the same count."""
    per_rank = -(-num // info.world_size)
    padded = np.resize(np.arange(num), per_rank * info.world_size)
    return padded[info.rank::info.world_size]


def _gather_chunks(local: torch.Tensor | np.ndarray, length: int, chunk_rows: int, info: DistInfo,
                   place: Callable[[int, int, np.ndarray], None]) -> None:
    """Send rows [0, length) of `local` to rank 0 chunk by chunk; rank 0 calls place(rank, start, rows).

    Every rank passes the same `length`; a rank with fewer rows pads its chunks with zeros (the
    receiver knows each rank's true count). Each chunk is moved to the group's device (nccl needs
    CUDA tensors) only while it is sent; a full chunk already there is sent as is (no copy).
    """
    world = info.world_size
    for start in range(0, length, chunk_rows):
        rows = min(chunk_rows, length - start)
        part = torch.as_tensor(local[start:start + rows]).to(info.device)
        if len(part) == rows:
            chunk = part.contiguous()
        else:
            chunk = torch.zeros((rows, *part.shape[1:]), dtype=part.dtype, device=info.device)
            chunk[:len(part)] = part
        bucket = [torch.empty_like(chunk) for _ in range(world)] if info.is_main else None
        tdist.gather(chunk, bucket, dst=0)
        for r, piece in enumerate(bucket or ()):
            place(r, start, piece.cpu().numpy())


def gather_rows(local: torch.Tensor, num: int, info: DistInfo) -> np.ndarray | None:
    """Inverse of `shard_indices`: rank 0 gets the full [num, d] array, others None.

    Rank 0 preallocates the one output array and writes every gathered chunk straight into its
    strided rows, so its host memory is one copy of the features plus one chunk per rank.
    """
    if not info.distributed:
        return local.cpu().numpy()[:num]
    world = info.world_size
    dtype = local[:0].cpu().numpy().dtype
    full = np.empty((len(local) * world, local.shape[1]), dtype=dtype) if info.is_main else None

    def place(rank: int, start: int, rows: np.ndarray) -> None:
        assert full is not None
        full[start * world + rank:(start + len(rows)) * world:world] = rows

    _gather_chunks(local, len(local), GATHER_CHUNK_ROWS, info, place)
    return None if full is None else full[:num]


def batch_bounds(num: int, batch_size: int, world_size: int) -> list[tuple[int, int]]:
    """Each rank's contiguous row range [start, stop) of range(num), made of whole batches.

    The batches are exactly those of one process reading range(num) in order with `batch_size`
    (only the last one may be short), split as evenly as batches allow; rank 0 always has one, a
    rank beyond the batch count gets an empty range.
    """
    if num < 0 or batch_size < 1 or world_size < 1:
        raise ValueError(f"batch_bounds(num={num}, batch_size={batch_size}, world_size={world_size})")
    batches = -(-num // batch_size)
    edges = [min(num, -(-rank * batches // world_size) * batch_size) for rank in range(world_size + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def gather_ranges(local: np.ndarray, out: np.ndarray | None, bounds: list[tuple[int, int]],
                  info: DistInfo) -> None:
    """Rank r's rows `local` (= rows bounds[r] of the result) into rank 0's preallocated `out`.

    `out` (rank 0 only; None elsewhere) already holds rank 0's own rows; the others' arrive in
    chunks of about GATHER_CHUNK_BYTES and are written at their offsets. Every rank passes the
    same `bounds`, and a (rows, dim) `local` with dim agreeing across ranks.
    """
    if not info.distributed:
        return
    counts = [stop - start for start, stop in bounds]
    if len(local) != counts[info.rank]:
        raise ValueError(f"rank {info.rank} holds {len(local)} rows, its range {bounds[info.rank]} has "
                         f"{counts[info.rank]}")
    row_bytes = max(1, int(np.prod(local.shape[1:])) * local.dtype.itemsize)

    def place(rank: int, start: int, rows: np.ndarray) -> None:
        valid = min(len(rows), counts[rank] - start)
        if rank != 0 and valid > 0 and out is not None:
            begin = bounds[rank][0] + start
            out[begin:begin + valid] = rows[:valid]

    _gather_chunks(local, max(counts), max(1, GATHER_CHUNK_BYTES // row_bytes), info, place)


def broadcast_object(value: T | None, info: DistInfo) -> T:
    """Rank 0's (picklable) `value` on every rank; `value` is ignored elsewhere."""
    if not info.distributed:
        assert value is not None
        return value
    box = [value if info.is_main else None]
    tdist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def gather_objects(value: T, info: DistInfo) -> list[T]:
    """Every rank's (picklable) `value`, in rank order, on every rank."""
    if not info.distributed:
        return [value]
    out: list[T | None] = [None] * info.world_size
    tdist.all_gather_object(out, value)
    return out  # type: ignore[return-value]


def on_main(step: Callable[[], T], info: DistInfo, wait: datetime.timedelta = MAIN_WAIT) -> T:
    """Run `step` on rank 0 only and return its result on every rank.

    The other ranks wait (up to `wait`, on a gloo group of their own, so an NCCL watchdog does not
    end a long rank-0 step) and get rank 0's result, or raise a RuntimeError naming rank 0's error.
    """
    if not info.distributed:
        return step()
    group = tdist.new_group(backend="gloo", timeout=wait)
    try:
        box: list[object] = [None]
        if info.is_main:
            try:
                box = [("ok", step())]
            except Exception as err:
                tdist.broadcast_object_list([("error", f"{type(err).__name__}: {err}")], src=0, group=group)
                raise
        tdist.broadcast_object_list(box, src=0, group=group)
        status, value = box[0]  # type: ignore[misc]
        if status == "error":
            raise RuntimeError(f"rank 0 failed: {value}")
        return value  # type: ignore[return-value]
    finally:
        tdist.destroy_process_group(group)
