"""One-command GPU check (< 5 min on one H100/H200): prints every figure, one `FIGURE` line each.

    python benchmarks/gpu_check.py            # on a GPU machine: the full sizes below
    python benchmarks/gpu_check.py --tiny     # anywhere (CPU): tiny sizes, GPU-only parts skipped

Figures:
1. torch k-means (pretrain.cluster.torch_kmeans): 1.28M x 256 points, k = 10,000, 20 iterations
   (target <= 30 s on one H100/H200), objective per point;
2. faiss-gpu k-means on the same points when faiss has GPU support (else a line saying why not);
3. extraction images/s (dcbench.features.extract_features, Feature1..5 taps, 224 px): fp32 NCHW
   vs fp32 channels_last vs bf16 autocast + channels_last (bf16 is a recorded protocol deviation);
4. one linear-probe step (frozen trunk, BN + Linear heads on the five taps, SGD) and one
   semi-supervised step (whole network fine-tuned, SGD) per second at batch 256 / 224 px.
On a CPU-only machine (or with --tiny) the sizes shrink so the script runs in seconds, and each
part that needs CUDA prints `SKIPPED (no CUDA): ...` instead of a number.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from dcbench.backbone import LAYERS, FeatureTaps, build_resnet50
from dcbench.features import FeatureKey, extract_features
from evaluators.classification.linear import ProbeHeads
from pretrain.cluster import torch_kmeans


@dataclass(frozen=True)
class Sizes:
    points: int
    dim: int
    k: int
    iters: int
    images: int
    image_px: int
    batch: int
    steps: int


FULL = Sizes(points=1_281_167, dim=256, k=10_000, iters=20, images=1024, image_px=224, batch=256, steps=5)
TINY = Sizes(points=2_000, dim=16, k=20, iters=3, images=8, image_px=32, batch=4, steps=1)


def figure(name: str, value: str) -> None:
    print(f"FIGURE {name}: {value}", flush=True)


def skipped(name: str, why: str) -> None:
    print(f"FIGURE {name}: SKIPPED ({why})", flush=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


def check_kmeans(sizes: Sizes, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = nn.functional.normalize(torch.randn(sizes.points, sizes.dim, generator=gen), dim=1).to(device)
    torch_kmeans(x[: sizes.k * 2], sizes.k, 1, seed=0)  # warm-up (kernels, allocator)
    seconds, (_, _, obj) = _timed(lambda: torch_kmeans(x, sizes.k, sizes.iters, seed=0), device)
    figure(f"torch k-means {device.type} N={sizes.points} d={sizes.dim} k={sizes.k} {sizes.iters} iters",
           f"{seconds:.2f} s (target <= 30 s on one H100/H200 at full size), objective/point "
           f"{obj / sizes.points:.5f}")
    return x


def check_faiss_gpu(x: torch.Tensor, sizes: Sizes) -> None:
    name = "faiss-gpu k-means, same points"
    try:
        import faiss
    except ImportError as err:
        skipped(name, f"faiss not importable: {err}")
        return
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        skipped(name, "this faiss build has no GPU support (faiss-cpu) or sees no GPU; "
                      "the GPU build is the faiss-gpu package (same version as faiss-cpu)")
        return
    data = x.cpu().numpy()
    clus = faiss.Clustering(sizes.dim, sizes.k)
    clus.niter, clus.seed, clus.max_points_per_centroid, clus.verbose = sizes.iters, 0, 10_000_000, False
    index = faiss.GpuIndexFlatL2(faiss.StandardGpuResources(), sizes.dim)
    start = time.perf_counter()
    clus.train(data, index)
    dist, _ = index.search(data, 1)
    figure(name, f"{time.perf_counter() - start:.2f} s, objective/point {float(dist.sum()) / len(data):.5f}")


class _Noise(Dataset):
    """Random normalised images (extraction speed does not depend on content)."""

    def __init__(self, count: int, px: int) -> None:
        self.images = torch.randn(count, 3, px, px, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], 0


def check_extraction(sizes: Sizes, device: torch.device, tmp: Path) -> None:
    data = _Noise(sizes.images, sizes.image_px)
    model = FeatureTaps(build_resnet50(sobel=False))
    variants = [("fp32 NCHW", "fp32", False), ("fp32 channels_last", "fp32", True),
                ("bf16 autocast + channels_last", "bf16", True)]
    rates = {}
    for label, precision, channels_last in variants:
        if precision != "fp32" and device.type != "cuda":
            skipped(f"extraction {label}", "no CUDA: bf16 autocast is offered on CUDA only")
            continue
        for run in ("warm", "timed"):
            key = FeatureKey("c" * 64, "gpucheck", f"{run}-{precision}-{channels_last}", "noise",
                             precision=precision)
            seconds, _ = _timed(lambda key=key, cl=channels_last: extract_features(
                model, data, LAYERS, tmp, key, device, batch_size=sizes.batch, progress=False,
                channels_last=cl), device)
        rates[label] = sizes.images / seconds
        figure(f"extraction {label} {sizes.image_px} px batch {sizes.batch} {device.type}",
               f"{rates[label]:.1f} img/s")
    if "fp32 NCHW" in rates and len(rates) > 1:
        base = rates["fp32 NCHW"]
        figure("extraction speed-up vs fp32 NCHW",
               ", ".join(f"{k} {v / base:.2f}x" for k, v in rates.items() if k != "fp32 NCHW"))


def _steps_per_s(step: Callable[[], None], steps: int, device: torch.device) -> float:
    step()  # warm-up
    seconds, _ = _timed(lambda: [step() for _ in range(steps)], device)
    return steps / seconds


def check_training(sizes: Sizes, device: torch.device) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(sizes.batch, 3, sizes.image_px, sizes.image_px, generator=gen).to(device)
    y = torch.randint(0, 1000, (sizes.batch,), generator=gen).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    trunk = FeatureTaps(build_resnet50(sobel=False)).to(device).to(memory_format=torch.channels_last)
    heads = ProbeHeads(LAYERS, 1000).to(device)
    probe_opt = torch.optim.SGD(heads.parameters(), lr=0.01, momentum=0.9)

    def probe_step() -> None:
        trunk.eval()
        with torch.no_grad():
            feats = trunk(x, taps=LAYERS)
        loss = sum(nn.functional.cross_entropy(o, y) for o in heads(feats).values())
        probe_opt.zero_grad(set_to_none=True)
        loss.backward()
        probe_opt.step()

    figure(f"linear-probe step (5 heads, batch {sizes.batch}, {sizes.image_px} px, {device.type})",
           f"{_steps_per_s(probe_step, sizes.steps, device):.2f} steps/s")
    net = build_resnet50(sobel=False)
    net.fc = nn.Linear(2048, 1000)
    net = net.to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def semisup_step() -> None:
        net.train()
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    figure(f"semi-supervised step (whole ResNet-50, batch {sizes.batch}, {sizes.image_px} px, {device.type})",
           f"{_steps_per_s(semisup_step, sizes.steps, device):.2f} steps/s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny sizes (CPU smoke run; default without CUDA)")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    sizes = TINY if args.tiny or not cuda else FULL
    print(f"gpu_check: device {torch.cuda.get_device_name(0) if cuda else 'cpu (no CUDA)'}, torch "
          f"{torch.__version__}, sizes {'tiny' if sizes is TINY else 'full'}", flush=True)
    if not cuda:
        print("gpu_check: no CUDA device: running the CPU parts at tiny size; GPU-only parts are skipped",
              flush=True)
    x = check_kmeans(sizes, device)
    check_faiss_gpu(x, sizes)
    with tempfile.TemporaryDirectory() as tmp:
        check_extraction(sizes, device, Path(tmp))
    check_training(sizes, device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
