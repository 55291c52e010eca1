"""Peak host memory that must not grow with the dataset: pretrain's rank-0 feature gather and COCO
mask evaluation, each at N and 4N against a named alternative measured in the same run.

    OMP_NUM_THREADS=1 python benchmarks/bench_memory.py          # gather 16384 / 65536 rows, COCO 50 / 200
    OMP_NUM_THREADS=1 python benchmarks/bench_memory.py --rows 65536 --world 4 --coco-images 100
    OMP_NUM_THREADS=1 python benchmarks/bench_memory.py --parts coco

Gather: each measurement runs in fresh processes (a gloo group of `--world` CPU ranks, rank 0
gathering): the peak RSS growth of rank 0 during the gather (ru_maxrss after minus RSS before, the
local shard already allocated). `preallocated` is `pretrain.distributed.gather_rows` (one output
array, each chunk written into its strided rows); `three-copy` is the previous implementation
(per-rank chunk lists, then one concatenation per rank, then the interleaved output), kept here
only as the named alternative. Both outputs are checked equal. The output array itself is
`rows x dim x 4` bytes: the preallocated gather's peak is that plus one chunk per rank.

COCO: mmdet 3.3.0's `CocoMetric` (bbox + segm; the evaluator of evaluators/detection/mm_engine.py)
over synthetic ground truth (`--coco-images` images of `--width` x `--height`, `--instances`
polygon instances each) and `--detections` predicted instances per image with full-resolution
bool masks, each size and variant in a fresh process: the peak RSS growth above the RSS once the
metric has loaded its ground truth. `per-image` is how mmdet's test loop feeds it (each image's
dense masks go to `CocoMetric.process`, which RLE-encodes them, and are dropped); `dense-kept` is
the named alternative of the retired embedded engine (`tv_engine.predict` kept every image's
(N, H, W) bool masks until all images were predicted): the same metric fed only after every
image's dense masks were made. Both give the same metrics (checked).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import resource
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pretrain import distributed as D

DIM = 2048
COCO_CLASSES = tuple(f"thing{i}" for i in range(10))


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


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux


def _growth(before: float) -> float:
    """Peak RSS growth since `before` (MiB). The peak cannot be below `before`; Linux's per-thread
    RSS counters can put the two readings a few pages apart, so the difference is floored at 0."""
    return max(0.0, _peak_mb() - before)


def _worker(rank: int, world: int, port: int, rows: int, impl: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    info = D.DistInfo(rank, world, torch.device("cpu"), True)
    shard = D.shard_indices(rows, info)
    gen = torch.Generator().manual_seed(rank)
    local = torch.rand(len(shard), DIM, generator=gen) + torch.from_numpy(shard).float()[:, None]
    dist.barrier()
    before = _rss_mb()
    gather = D.gather_rows if impl == "preallocated" else three_copy_gather
    full = gather(local, rows, info)
    growth = _growth(before)
    if full is not None:
        digest = hashlib.sha256(np.ascontiguousarray(full).tobytes()).hexdigest()[:16]
        Path(out).write_text(f"{growth:.1f} {digest}")
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


def _ellipse(rng: np.random.Generator, width: int, height: int) -> tuple[float, float, float, float]:
    """Centre x, y and half-axes of a random ellipse inside the image."""
    ax, ay = rng.uniform(0.04, 0.2) * width, rng.uniform(0.04, 0.2) * height
    return rng.uniform(ax, width - ax), rng.uniform(ay, height - ay), ax, ay


def _polygon(cx: float, cy: float, ax: float, ay: float, vertices: int = 24) -> list[float]:
    t = np.linspace(0, 2 * math.pi, vertices, endpoint=False)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], 1).round(2).ravel().tolist()


def _gt_objects(image: int, args: argparse.Namespace) -> list[tuple[int, tuple[float, float, float, float]]]:
    rng = np.random.default_rng([image, 1])
    return [(int(rng.integers(len(COCO_CLASSES))), _ellipse(rng, args.width, args.height))
            for _ in range(args.instances)]


def write_coco_gt(path: Path, images: int, args: argparse.Namespace) -> None:
    """A COCO instances json: `images` images, `args.instances` polygon objects each (deterministic
    per image, so the first N images of 4N are the N-image set)."""
    anns = []
    for image in range(1, images + 1):
        for label, (cx, cy, ax, ay) in _gt_objects(image, args):
            anns.append({"id": len(anns) + 1, "image_id": image, "category_id": label + 1, "iscrowd": 0,
                         "segmentation": [_polygon(cx, cy, ax, ay)], "area": math.pi * ax * ay,
                         "bbox": [cx - ax, cy - ay, 2 * ax, 2 * ay]})
    path.write_text(json.dumps({
        "images": [{"id": i, "width": args.width, "height": args.height, "file_name": f"{i:012d}.jpg"}
                   for i in range(1, images + 1)],
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(COCO_CLASSES)],
        "annotations": anns}))


def predictions(image: int, args: argparse.Namespace) -> dict[str, object]:
    """One image's data sample as mmdet's test loop hands it to the metric: jittered copies of the
    ground truth plus false positives, each with a full-resolution bool mask."""
    rng = np.random.default_rng([image, 2])
    objects = _gt_objects(image, args)
    objects += [(int(rng.integers(len(COCO_CLASSES))), _ellipse(rng, args.width, args.height))
                for _ in range(max(0, args.detections - len(objects)))]
    objects = objects[:args.detections]
    yy, xx = np.ogrid[:args.height, :args.width]
    masks = np.zeros((len(objects), args.height, args.width), dtype=bool)
    boxes = np.zeros((len(objects), 4), dtype=np.float32)
    for k, (_, (cx, cy, ax, ay)) in enumerate(objects):
        cx, cy = cx + rng.normal(0, 0.05 * ax), cy + rng.normal(0, 0.05 * ay)
        masks[k] = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1
        boxes[k] = (cx - ax, cy - ay, cx + ax, cy + ay)
    instances = {"bboxes": torch.from_numpy(boxes), "masks": torch.from_numpy(masks),
                 "scores": torch.from_numpy(rng.uniform(0.05, 1, len(objects))),
                 "labels": torch.tensor([label for label, _ in objects])}
    return {"img_id": image, "ori_shape": (args.height, args.width), "pred_instances": instances}


def coco_measurement(impl: str, images: int, ann_file: str, args: argparse.Namespace) -> dict[str, object]:
    """Feed `images` images' predictions to CocoMetric (`impl`: per-image or dense-kept) and evaluate;
    the RSS growth (MiB) above the loaded metric, the peak RSS and the metrics."""
    from mmdet.evaluation.metrics.coco_metric import CocoMetric  # imported in the measuring process only

    metric = CocoMetric(ann_file=ann_file, metric=["bbox", "segm"])
    metric.dataset_meta = {"classes": COCO_CLASSES}
    before = _rss_mb()
    kept = []
    for image in range(1, images + 1):
        sample = predictions(image, args)
        if impl == "per-image":
            metric.process({}, [sample])  # RLE-encoded here; the dense masks are dropped with `sample`
        else:
            kept.append(sample)
    for sample in kept:
        metric.process({}, [sample])
    del kept
    values = metric.evaluate(images)
    metrics = {k: float(v) for k, v in values.items()}
    return {"growth": _growth(before), "peak": _peak_mb(), "metrics": metrics}


def _coco_worker(impl: str, images: int, ann_file: str, args: argparse.Namespace, out: str) -> None:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # COCOeval's and mmengine's summaries; errors reach stderr
    Path(out).write_text(json.dumps(coco_measurement(impl, images, ann_file, args)))


def measure_coco(images: int, impl: str, ann_file: Path, args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        proc = multiprocessing.get_context("spawn").Process(
            target=_coco_worker, args=(impl, images, str(ann_file), args, out))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"the COCO {impl} measurement at {images} images failed (exit {proc.exitcode})")
        return json.loads(Path(out).read_text())


def gather_table(args: argparse.Namespace) -> None:
    print(f"rank-0 gather of N x {DIM} float32 features over {args.world} gloo ranks "
          f"(chunk {D.GATHER_CHUNK_ROWS} rows); peak RSS growth during the gather, MiB")
    print(f"{'rows':>8} {'output MiB':>10} {'preallocated':>12} {'three-copy':>10} {'ratio':>6}")
    for rows in (args.rows, 4 * args.rows):
        ours, ours_digest = measure(rows, args.world, "preallocated")
        old, old_digest = measure(rows, args.world, "three-copy")
        if ours_digest != old_digest:
            raise SystemExit(f"the two gathers disagree at {rows} rows")
        print(f"{rows:>8} {rows * DIM * 4 / 2**20:>10.0f} {ours:>12.0f} {old:>10.0f} {old / ours:>6.2f}")


def coco_table(args: argparse.Namespace) -> None:
    dense = args.detections * args.width * args.height / 2**20
    print(f"mmdet CocoMetric (bbox + segm) on synthetic {args.width}x{args.height} images, {args.instances} "
          f"ground-truth / {args.detections} predicted instances each ({dense:.1f} MiB of bool masks per "
          "image); peak RSS growth above the loaded metric, MiB (peak RSS in brackets)")
    print(f"{'images':>7} {'dense MiB':>9} {'per-image':>16} {'dense-kept':>16} {'ratio':>6}")
    growth = []
    with tempfile.TemporaryDirectory() as tmp:
        for images in (args.coco_images, 4 * args.coco_images):
            ann_file = Path(tmp) / f"instances_{images}.json"
            write_coco_gt(ann_file, images, args)
            ours, old = (measure_coco(images, impl, ann_file, args) for impl in ("per-image", "dense-kept"))
            if ours["metrics"] != old["metrics"]:
                raise SystemExit(f"the two feeds disagree at {images} images: {ours['metrics']} "
                                 f"{old['metrics']}")
            growth.append(ours["growth"])
            ratio = old["growth"] / max(ours["growth"], 1.0)
            print(f"{images:>7} {images * dense:>9.0f} {ours['growth']:>7.0f} ({ours['peak']:>6.0f}) "
                  f"{old['growth']:>7.0f} ({old['peak']:>6.0f}) {ratio:>6.2f}")
        print(f"per-image growth 4N / N: {growth[1] / max(growth[0], 1.0):.2f}; segm mAP "
              f"{ours['metrics'].get('coco/segm_mAP')} (both feeds)")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="gather,coco", help="comma-separated: gather, coco")
    p.add_argument("--rows", type=int, default=16384, help="gather: N (the second size is 4N)")
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--coco-images", type=int, default=50, help="COCO: N images (the second size is 4N)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--instances", type=int, default=7, help="ground-truth instances per image")
    p.add_argument("--detections", type=int, default=20, help="predicted instances (masks) per image")
    args = p.parse_args(argv)
    parts = args.parts.split(",")
    if unknown := set(parts) - {"gather", "coco"}:
        p.error(f"unknown --parts {sorted(unknown)}")
    if "gather" in parts:
        gather_table(args)
    if "coco" in parts:
        coco_table(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
