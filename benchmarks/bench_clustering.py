"""Speed of DeepCluster's clustering step and feature extraction (prints its figures).

Run from the repository root with the project importable (`pip install -e .` or `PYTHONPATH=.`):
    python benchmarks/bench_clustering.py                      # N=100,000 x 2048 -> 256, k=10,000
    python benchmarks/bench_clustering.py --n 20000 --k 1000   # scaled down (sklearn is slow)
    python benchmarks/bench_clustering.py --device cuda        # torch k-means, 1.28M x 256, k=10,000

Clustering: the same synthetic features (a Gaussian mixture in a random low-rank subspace plus
noise, like CNN features: many points per mode, decaying spectrum) go through
  ours      pretrain.cluster.cluster_features (faiss PCA-whitening + L2 + faiss k-means, all points)
  faiss     plain faiss calls written out here (PCAMatrix, normalisation, faiss.Kmeans)
  sklearn   sklearn PCA(whiten) + L2 + KMeans(lloyd, random init, n_init=1, tol=0)
each for `--iters` iterations; the objective printed is the sum of squared distances of every point
to its assigned centroid (sklearn's inertia), per point.
Extraction: images/s of `pretrain.recluster.extract_features` against a bare torchvision loop
(ImageFolder-style dataset, same transform, same batch size, model in eval mode, no_grad).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import PIL.Image
import torch
import torchvision
from torch.utils.data import DataLoader

from dcbench.config import replace
from pretrain import distributed as D
from pretrain.cluster import cluster_features, torch_kmeans
from pretrain.config import DEEPCLUSTER_R50, PretrainConfig
from pretrain.data import extract_transform
from pretrain.model import DeepClusterModel
from pretrain.recluster import Images, extract_features


def synthetic_features(n: int, dim: int, modes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rank = min(dim, 512)
    basis = rng.normal(size=(rank, dim)).astype(np.float32) / np.sqrt(rank)
    spectrum = np.geomspace(4.0, 0.05, rank).astype(np.float32)
    centers = rng.normal(size=(modes, rank)).astype(np.float32) * spectrum
    which = rng.integers(0, modes, size=n)
    latent = centers[which] + 0.3 * rng.normal(size=(n, rank)).astype(np.float32) * spectrum
    return np.maximum(latent @ basis + 0.01 * rng.normal(size=(n, dim)).astype(np.float32), 0)


def bench_ours(feats: np.ndarray, args: argparse.Namespace) -> tuple[float, float]:
    t = time.perf_counter()
    res = cluster_features(feats, args.k, args.pca, args.iters, seed=0, backend="faiss")
    elapsed = time.perf_counter() - t
    return elapsed, res.objective / len(feats)


def bench_faiss(feats: np.ndarray, args: argparse.Namespace) -> tuple[float, float]:
    t = time.perf_counter()
    pca = faiss.PCAMatrix(feats.shape[1], args.pca, -0.5)
    pca.train(feats)
    x = pca.apply(feats)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-10
    km = faiss.Kmeans(args.pca, args.k, niter=args.iters, seed=0, max_points_per_centroid=10_000_000)
    km.train(x)
    dist, _ = km.index.search(x, 1)
    elapsed = time.perf_counter() - t
    return elapsed, float(dist.sum() / len(x))


def bench_sklearn(feats: np.ndarray, args: argparse.Namespace) -> tuple[float, float]:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    t = time.perf_counter()
    x = PCA(args.pca, whiten=True, svd_solver="covariance_eigh").fit_transform(feats)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-10
    km = KMeans(args.k, init="random", n_init=1, max_iter=args.iters, tol=0.0, algorithm="lloyd",
                random_state=0).fit(x.astype(np.float32))
    elapsed = time.perf_counter() - t
    return elapsed, float(km.inertia_ / len(x))


def bench_clustering(args: argparse.Namespace) -> None:
    print(f"clustering: N={args.n} x {args.dim} -> PCA {args.pca}, k={args.k}, {args.iters} iterations, "
          f"faiss threads={faiss.omp_get_max_threads()}")
    feats = synthetic_features(args.n, args.dim, modes=max(2, args.k // 2), seed=0)
    runs = [("ours (pretrain.cluster, faiss-cpu)", bench_ours), ("plain faiss-cpu", bench_faiss)]
    if not args.skip_sklearn:
        runs.append(("scikit-learn KMeans", bench_sklearn))
    for name, fn in runs:
        seconds, obj = fn(feats, args)
        print(f"  {name:40s} {seconds:9.2f} s   objective/point {obj:.5f}")


def bench_extraction(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    cfg = replace(DEEPCLUSTER_R50, extract_resize=args.size * 8 // 7, extract_crop=args.size,
                  extract_batch_size=args.batch, num_workers=args.workers, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp), args.images, args.size * 5 // 4)
        model = DeepClusterModel(10, sobel=False).to(device)
        info = D.DistInfo(0, 1, device)
        extract_features(model, cfg, Images(paths[: args.batch], None), info)  # warm-up
        t = time.perf_counter()
        extract_features(model, cfg, Images(paths, None), info)
        ours = len(paths) / (time.perf_counter() - t)
        bare = bare_torchvision(paths, cfg, args, device)
    print(f"extraction: {args.images} images, {args.size} px, batch {args.batch}, workers {args.workers}, "
          f"{device}")
    print(f"  ours {ours:8.1f} img/s   bare torchvision {bare:8.1f} img/s   ratio {ours / bare:.2f}")


def write_images(root: Path, count: int, size: int) -> tuple[Path, ...]:
    rng = np.random.default_rng(0)
    (root / "c").mkdir()
    out = []
    for i in range(count):
        path = root / "c" / f"{i}.JPEG"
        PIL.Image.fromarray(rng.integers(0, 255, (size, size * 4 // 3, 3), dtype=np.uint8)).save(path)
        out.append(path)
    return tuple(out)


def bare_torchvision(paths: tuple[Path, ...], cfg: PretrainConfig, args: argparse.Namespace,
                     device: torch.device) -> float:
    dataset = torchvision.datasets.ImageFolder(str(paths[0].parent.parent), transform=extract_transform(cfg))
    loader = DataLoader(dataset, batch_size=args.batch, num_workers=args.workers,
                        pin_memory=device.type == "cuda")
    model = torchvision.models.resnet50(weights=None)
    model.fc = torch.nn.Identity()
    model.eval().to(device)
    with torch.no_grad():
        model(torch.zeros(2, 3, args.size, args.size, device=device))
        t = time.perf_counter()
        feats = [model(x.to(device)).cpu() for x, _ in loader]
    assert sum(len(f) for f in feats) == len(paths)
    return len(paths) / (time.perf_counter() - t)


def bench_torch_kmeans(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    n, d = args.gpu_n, args.pca
    x = torch.nn.functional.normalize(torch.randn(n, d, device=device), dim=1)
    torch_kmeans(x[: args.k * 2], args.k, 1, seed=0)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    _, _, obj = torch_kmeans(x, args.k, args.iters, seed=0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    print(f"torch k-means on {device}: N={n} x {d}, k={args.k}, {args.iters} iterations: "
          f"{time.perf_counter() - t:.2f} s, objective/point {obj / n:.5f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--pca", type=int, default=256)
    p.add_argument("--k", type=int, default=10_000)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--skip-clustering", action="store_true")
    p.add_argument("--images", type=int, default=256, help="extraction benchmark: number of images")
    p.add_argument("--size", type=int, default=96, help="extraction crop (224 on a GPU)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-extraction", action="store_true")
    p.add_argument("--device", default="cpu", help="cuda: also time torch k-means on --gpu-n points")
    p.add_argument("--gpu-n", type=int, default=1_281_167)
    p.add_argument("--torch-kmeans", action="store_true", help="time torch k-means on --device (cpu too)")
    args = p.parse_args()
    if not args.skip_clustering:
        bench_clustering(args)
    if not args.skip_extraction:
        bench_extraction(args)
    if args.device.startswith("cuda") or args.torch_kmeans:
        bench_torch_kmeans(args)


if __name__ == "__main__":
    main()
