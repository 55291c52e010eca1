"""Peak host memory of pretrain's rank-0 feature gather, against the three-copy gather it replaced.

    OMP_NUM_THREADS=1 python benchmarks/bench_memory.py              # N = 16384 and 4N rows x 2048
    OMP_NUM_THREADS=1 python benchmarks/bench_memory.py --rows 65536 --world 4

Each measurement runs in fresh processes (a gloo group of `--world` CPU ranks, rank 0 gathering):
the peak RSS growth of rank 0 during the gather (ru_maxrss after minus RSS before, the local shard
already allocated). `preallocated` is `pretrain.distributed.gather_rows` (one output array, each
chunk written into its strided rows); `three-copy` is the previous implementation (per-rank chunk
lists, then one concatenation per rank, then the interleaved output), kept here only as the named
alternative. Both outputs are checked equal. The output array itself is `rows x dim x 4` bytes:
the preallocated gather's peak is that plus one chunk per rank; the old one held about three.

Not measured here: COCO mask evaluation (the embedded torchvision detection engine that kept the
masks is being replaced by mmdet's evaluator, which encodes masks per image).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import socket
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pretrain import distributed as D

DIM = 2048


def three_copy_gather(local: torch.Tensor, num: int, info: D.DistInfo) -> np.ndarray | None:
    """The gather as it was before: chunk lists, a concatenation per rank, then the output array."""
    parts: list[list[np.ndarray]] = [[] for _ in range(info.world_size)]
    for start in range(0, len(local), D.GATHER_CHUNK_ROWS):
        chunk = local[start:start + D.GATHER_CHUNK_ROWS].contiguous()
        bucket = [torch.empty_like(chunk) for _ in range(info.world_size)] if info.is_main else None
        dist.gather(chunk, bucket, dst=0)
        if bucket is not None:
            for r, piece in enumerate(bucket):
                parts[r].append(piece.cpu().numpy())
    if not info.is_main:
        return None
    per_rank = [np.concatenate(p) for p in parts]
    full = np.empty((len(local) * info.world_size, local.shape[1]), dtype=per_rank[0].dtype)
    for r, rows in enumerate(per_rank):
        full[r::info.world_size] = rows
    return full[:num]


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _worker(rank: int, world: int, port: int, rows: int, impl: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    info = D.DistInfo(rank, world, rank, torch.device("cpu"), True)
    shard = D.shard_indices(rows, info)
    gen = torch.Generator().manual_seed(rank)
    local = torch.rand(len(shard), DIM, generator=gen) + torch.from_numpy(shard).float()[:, None]
    dist.barrier()
    before = _rss_mb()
    gather = D.gather_rows if impl == "preallocated" else three_copy_gather
    full = gather(local, rows, info)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    if full is not None:
        digest = hashlib.sha256(np.ascontiguousarray(full).tobytes()).hexdigest()[:16]
        Path(out).write_text(f"{peak - before:.1f} {digest}")
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(rows: int, world: int, impl: str) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.txt")
        mp.spawn(_worker, args=(world, _free_port(), rows, impl, out), nprocs=world, join=True)
        growth, digest = Path(out).read_text().split()
    return float(growth), digest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=16384, help="N (the second size is 4N)")
    p.add_argument("--world", type=int, default=2)
    args = p.parse_args()
    print(f"rank-0 gather of N x {DIM} float32 features over {args.world} gloo ranks "
          f"(chunk {D.GATHER_CHUNK_ROWS} rows); peak RSS growth during the gather, MiB")
    print(f"{'rows':>8} {'output MiB':>10} {'preallocated':>12} {'three-copy':>10} {'ratio':>6}")
    for rows in (args.rows, 4 * args.rows):
        ours, ours_digest = measure(rows, args.world, "preallocated")
        old, old_digest = measure(rows, args.world, "three-copy")
        if ours_digest != old_digest:
            raise SystemExit(f"the two gathers disagree at {rows} rows")
        print(f"{rows:>8} {rows * DIM * 4 / 2**20:>10.0f} {ours:>12.0f} {old:>10.0f} {old / ours:>6.2f}")


if __name__ == "__main__":
    main()
