"""torch.distributed plumbing shared by the pretrainer and the classification evaluators.

Under torchrun (WORLD_SIZE > 1 in the environment) `init_distributed` joins or creates the
default process group (nccl on CUDA, gloo on the CPU); a plain single process uses the same code
paths with world size 1, where every helper here is the identity.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as tdist
from torch import nn


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
    """Run `work` on rank 0 only; under torchrun the other ranks wait for it at a barrier.

    The gloo group for the barrier is made and destroyed here (or an existing one is used), so a
    later `init_distributed` picks its own backend. When `work` raises, rank 0 exits without the
    barrier and torchrun stops the waiting ranks.
    """
    info = init_distributed(torch.device("cpu"))
    try:
        if info.is_main:
            work()
        barrier(info)
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
