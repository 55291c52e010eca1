"""Feature-extraction speed: dcbench.features.extract_features against a bare eager torchvision loop.

Run from the repository root with the project importable (`pip install -e .` or `PYTHONPATH=.`):
    python benchmarks/bench_extraction.py                          # 256 JPEGs, 64 px (the tiny SVM size)
    python benchmarks/bench_extraction.py --size 224 --images 512 --device cuda --precision bf16

Both sides read the same JPEGs through the same dataset and transform (the VOC07 SVM extraction
pipeline, evaluators.svm.data.voc07_transform) with the same batch size and DataLoader workers,
and run the same ResNet-50 weights:
  bare   torchvision.models.resnet50 (fc = Identity), model.eval(), torch.no_grad(), NCHW,
         a plain loop `model(x.to(device)).cpu()` (what an evaluator without care would write);
  ours   extract_features: inference mode, channels_last, pinned memory + non-blocking copies on
         CUDA, optional torch.compile / bf16 autocast, all five Feature1..5 taps pooled and written
         to the .npy cache (more work than the bare loop's single avgpool output).
Each side runs once untimed on one batch first (allocator, oneDNN primitive cache), then
`--repeats` times; the best time of each is compared (a shared machine adds noise, never speed).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torchvision
from torch.utils.data import DataLoader, Subset

from dcbench.backbone import LAYERS, FeatureTaps, build_resnet50
from dcbench.datasets.common import ImageListDataset
from dcbench.features import FeatureKey, extract_features
from evaluators.svm.data import voc07_transform


def write_images(root: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    """`count` JPEGs of about `size` px with some structure (smooth blobs + noise), like photos."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    yy, xx = np.mgrid[0:size, 0:size * 4 // 3] / size
    for i in range(count):
        base = np.stack([np.sin(6 * xx * rng.random() + 5 * yy * rng.random() + c) for c in range(3)], -1)
        pixels = np.clip(127 + 90 * base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        path = root / f"{i:06d}.jpg"
        PIL.Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def time_bare(dataset: ImageListDataset, args: argparse.Namespace, device: torch.device) -> float:
    model = torchvision.models.resnet50(weights=None)
    model.fc = torch.nn.Identity()
    model.eval().to(device)

    def one_pass(data: torch.utils.data.Dataset) -> float:
        loader = DataLoader(data, batch_size=args.batch, num_workers=args.workers)
        start = time.perf_counter()
        with torch.no_grad():
            feats = [model(x.to(device)).cpu() for x, _ in loader]
        if device.type == "cuda":
            torch.cuda.synchronize()
        assert sum(len(f) for f in feats) == len(data)
        return time.perf_counter() - start

    one_pass(Subset(dataset, range(args.batch)))
    return min(one_pass(dataset) for _ in range(args.repeats))


def time_ours(dataset: ImageListDataset, args: argparse.Namespace, device: torch.device, tmp: Path) -> float:
    model = FeatureTaps(build_resnet50(sobel=False))

    def one_pass(data: torch.utils.data.Dataset, tag: str) -> float:
        key = FeatureKey("b" * 64, "bench", tag, "t", precision=args.precision)
        start = time.perf_counter()
        extract_features(model, data, LAYERS, tmp / "cache", key, device, batch_size=args.batch,
                         num_workers=args.workers, progress=False, channels_last=not args.no_channels_last,
                         compile_model=args.compile)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    one_pass(Subset(dataset, range(args.batch)), "warm")
    return min(one_pass(dataset, f"run{r}") for r in range(args.repeats))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--size", type=int, default=64, help="crop side (the tiny SVM size; 224 = protocol)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers, both sides")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="ours only (bf16: CUDA)")
    p.add_argument("--compile", action="store_true", help="ours with torch.compile")
    p.add_argument("--no-channels-last", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        paths = write_images(tmp / "jpg", args.images, args.size * 8 // 7)
        transform, _ = voc07_transform(args.size * 8 // 7, args.size)
        dataset = ImageListDataset(paths, [0] * len(paths), transform)
        torch.manual_seed(0)
        bare = time_bare(dataset, args, device)
        ours = time_ours(dataset, args, device, tmp)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"extraction: {args.images} images, {args.size} px, batch {args.batch}, workers {args.workers}, "
          f"{device}, torch threads {torch.get_num_threads()}, load {load:.1f}; ours: precision "
          f"{args.precision}, channels_last {not args.no_channels_last}, compile {args.compile}")
    print(f"  bare eager torchvision {args.images / bare:8.1f} img/s   ours {args.images / ours:8.1f} img/s  "
          f"EXTRACTION ratio {bare / ours:.2f}x", flush=True)


if __name__ == "__main__":
    main()
