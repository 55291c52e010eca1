"""DeepCluster's clustering step: PCA-whitening + L2 normalisation + k-means, behind one interface.

`cluster_features(features, k, pca_dim, niter, seed, backend)` is all the trainer calls.  Backends:
- faiss (`faiss.Clustering`, GPU index when faiss-gpu and a GPU are present, else CPU), with the
  reference settings: `niter` iterations, every point used (`max_points_per_centroid` = 1e7), empty
  clusters split by faiss during training;
- a pure-torch Lloyd k-means (`torch_kmeans`) for GPU machines without faiss-gpu: same
  initialisation rule (k distinct random points), same iteration order (assign, update, split empty
  clusters by copying a big cluster's centroid with a +-1/1024 perturbation, as faiss does).
Both report the objective of the final assignment (sum of squared L2 distances to the assigned
centroid) so they can be compared directly.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import faiss
import numpy as np
import torch

ALL_POINTS = 10_000_000  # faiss max_points_per_centroid as in the reference: no subsampling
SPLIT_EPS = 1.0 / 1024.0  # faiss split_clusters perturbation
CHUNK_ROWS = 65536  # rows per host-to-device chunk in PCA
NAN_TOLERANCE = 0.001
# eigenvalues below this fraction of the largest are float32 rounding noise (products are float32):
# whitening them would blow noise up to unit variance, so those components are dropped (warned).
DEGENERATE_EIGEN = 1e-6  # MMSelfSup clustering.py: <= 0.1% NaN after PCA are zeroed, more is an error


class ClusteringError(ValueError):
    """Clustering cannot run on this input (too few points, NaN features, ...)."""


@dataclass(frozen=True)
class ClusterResult:
    labels: np.ndarray  # int64 [N], in [0, k)
    objective: float  # sum over points of squared L2 distance to the assigned centroid
    num_empty: int  # clusters with no point in the final assignment
    backend: str  # "faiss-cpu", "faiss-gpu", "torch-cpu" or "torch-cuda"


def check_cluster_inputs(num_points: int, feat_dim: int, num_clusters: int, pca_dim: int) -> None:
    """Fail before any work (extraction included) when the data cannot be clustered."""
    if num_clusters > num_points:
        raise ClusteringError(
            f"k-means with k={num_clusters} clusters needs at least k images, but the dataset has "
            f"{num_points}; lower num_clusters or use more data")
    if pca_dim > feat_dim:
        raise ClusteringError(f"pca_dim={pca_dim} exceeds the feature dimension {feat_dim}")
    if pca_dim > num_points - 1:
        raise ClusteringError(
            f"PCA-whitening to {pca_dim} dims needs more than {pca_dim} images (the centred data has "
            f"rank <= N-1 and whitening divides by the eigenvalues), but the dataset has {num_points}")


def pca_whiten_l2(features: np.ndarray, dim: int, device: torch.device | None = None) -> np.ndarray:
    """PCA to `dim` dims with whitening (eigen power -0.5), then L2-normalise rows (float32).

    The same transform as faiss `PCAMatrix(d, dim, eigen_power=-0.5)` (centre, project on the top
    eigenvectors of the covariance, scale component i by eigenvalue_i ** -0.5), computed with torch
    (float64 covariance and eigh, chunked float32 products) on `device` (default: CUDA if present):
    ~10x faster than faiss's eigensolver on CPU.  Components may differ from faiss's by sign only.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    nan_rows = int(np.isnan(x).any(axis=1).sum())
    if nan_rows:
        raise ClusteringError(f"{nan_rows} of {len(x)} feature rows contain NaN; the network diverged")
    check_cluster_inputs(len(x), x.shape[1], 1, dim)
    dev = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mean, proj = _pca_whitening_matrix(x, dim, dev)
    y = np.empty((len(x), dim), dtype=np.float32)
    for start in range(0, len(x), CHUNK_ROWS):
        xb = torch.from_numpy(x[start:start + CHUNK_ROWS]).to(dev)
        y[start:start + CHUNK_ROWS] = ((xb - mean) @ proj).cpu().numpy()
    bad = ~np.isfinite(y)
    if bad.any():
        fraction = float(bad.mean())
        if fraction > NAN_TOLERANCE:
            raise ClusteringError(f"{100 * fraction:.3f}% non-finite values after PCA-whitening "
                                  f"({int(bad.any(axis=1).sum())} rows); more than the 0.1% tolerated")
        y[bad] = 0.0
    norms = np.linalg.norm(y, axis=1, keepdims=True)
    return (y / (norms + 1e-10)).astype(np.float32)


def _pca_whitening_matrix(x: np.ndarray, dim: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean [d] float32, projection [d, dim] float32) from two chunked passes over `x`."""
    total = torch.zeros(x.shape[1], dtype=torch.float64, device=dev)
    for start in range(0, len(x), CHUNK_ROWS):
        total += torch.from_numpy(x[start:start + CHUNK_ROWS]).to(dev).sum(0, dtype=torch.float64)
    mean = (total / len(x)).float()
    if len(x) < x.shape[1]:
        top, vecs = _gram_eigh(x, mean, dim, dev)
    else:
        cov = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=dev)
        for start in range(0, len(x), CHUNK_ROWS):
            xb = torch.from_numpy(x[start:start + CHUNK_ROWS]).to(dev) - mean
            cov += (xb.T @ xb).double()
        evals, evecs = torch.linalg.eigh(cov / len(x))  # ascending
        top, vecs = evals.flip(0)[:dim], evecs.flip(1)[:, :dim]
    alive = top > top[0].clamp_min(0) * DEGENERATE_EIGEN
    if not bool(alive.all()):
        warnings.warn(f"features are rank-deficient: only {int(alive.sum())} of {dim} PCA components carry "
                      "variance above float32 rounding; the others are dropped instead of whitened",
                      RuntimeWarning, stacklevel=3)
    scale = torch.where(alive, top, torch.ones_like(top)).pow(-0.5) * alive
    return mean, (vecs * scale).float()


def _gram_eigh(
    x: np.ndarray, mean: torch.Tensor, dim: int, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-`dim` covariance eigenpairs through the N x N Gram matrix when N < d (small datasets).

    X^T X and X X^T share their non-zero eigenvalues, with v = X^T u / sqrt(N lambda); an N x N
    eigh is far cheaper than the d x d one. Components beyond N have zero variance and come back
    as zero eigenvalues (dropped by the caller like any degenerate component).
    """
    xc = (torch.from_numpy(x).to(dev) - mean).double()
    n = len(x)
    evals, u = torch.linalg.eigh(xc @ xc.T / n)  # ascending
    keep = min(dim, n)
    top = evals.flip(0)[:keep].clamp_min(0)
    vecs = (xc.T @ u.flip(1)[:, :keep]) / torch.sqrt(n * top).clamp_min(1e-300)
    pad = dim - keep
    if pad:
        top = torch.cat([top, top.new_zeros(pad)])
        vecs = torch.cat([vecs, vecs.new_zeros(vecs.shape[0], pad)], dim=1)
    return top, vecs


def resolve_backend(backend: str) -> str:
    """Map the config value to a concrete backend name."""
    faiss_gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    if backend == "faiss":
        return "faiss-gpu" if faiss_gpu else "faiss-cpu"
    if backend == "torch":
        return "torch-cuda" if torch.cuda.is_available() else "torch-cpu"
    if backend == "auto":
        if faiss_gpu:
            return "faiss-gpu"
        return "torch-cuda" if torch.cuda.is_available() else "faiss-cpu"
    raise ClusteringError(f"unknown k-means backend {backend!r}; use auto, faiss or torch")


def kmeans(x: np.ndarray, k: int, niter: int, seed: int, backend: str = "auto") -> ClusterResult:
    """k-means on the rows of `x` (float32 [N, d]) with one of the backends."""
    check_cluster_inputs(len(x), x.shape[1], k, 1)
    name = resolve_backend(backend)
    if name.startswith("faiss"):
        labels, objective = _faiss_kmeans(x, k, niter, seed, gpu=name == "faiss-gpu")
    else:
        device = torch.device("cuda" if name == "torch-cuda" else "cpu")
        t_labels, _, objective = torch_kmeans(torch.from_numpy(x).to(device), k, niter, seed)
        labels = t_labels.cpu().numpy()
    labels = labels.astype(np.int64)
    num_empty = int((np.bincount(labels, minlength=k) == 0).sum())
    return ClusterResult(labels=labels, objective=float(objective), num_empty=num_empty, backend=name)


def cluster_features(features: np.ndarray, k: int, pca_dim: int, niter: int, seed: int,
                     backend: str = "auto") -> ClusterResult:
    """DeepCluster's clustering: PCA-whiten to `pca_dim`, L2-normalise, k-means."""
    check_cluster_inputs(len(features), features.shape[1], k, pca_dim)
    return kmeans(pca_whiten_l2(features, pca_dim), k, niter, seed, backend)


def _faiss_kmeans(x: np.ndarray, k: int, niter: int, seed: int, gpu: bool) -> tuple[np.ndarray, float]:
    x = np.ascontiguousarray(x, dtype=np.float32)
    d = x.shape[1]
    clus = faiss.Clustering(d, k)
    clus.seed = int(seed)
    clus.niter = niter
    clus.max_points_per_centroid = ALL_POINTS
    clus.min_points_per_centroid = 1  # only silences faiss's "too few points" warning
    clus.verbose = False
    if gpu:
        res = faiss.StandardGpuResources()
        cfg = faiss.GpuIndexFlatConfig()
        cfg.useFloat16 = False
        cfg.device = torch.cuda.current_device() if torch.cuda.is_available() else 0
        index = faiss.GpuIndexFlatL2(res, d, cfg)
    else:
        index = faiss.IndexFlatL2(d)
    clus.train(x, index)
    dist, assign = index.search(x, 1)
    return assign[:, 0], float(np.maximum(dist[:, 0], 0).astype(np.float64).sum())


def _assign(x: torch.Tensor, centroids: torch.Tensor, chunk_elems: int = 1 << 22
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid (squared L2) for every row, computed in row chunks.

    One fused GEMM per chunk, |c|^2 - 2 x.c (addmm), then the row minimum; |x|^2 does not change
    the argmin and is added to the minimum only. Chunks of ~4M distances stay cache-sized on CPU.
    """
    c_sq = (centroids * centroids).sum(1)
    rows = max(1, chunk_elems // max(1, len(centroids)))
    labels, dists = [], []
    for start in range(0, len(x), rows):
        xb = x[start:start + rows]
        best, idx = torch.addmm(c_sq, xb, centroids.T, alpha=-2.0).min(1)
        labels.append(idx)
        dists.append((best + (xb * xb).sum(1)).clamp_min(0))
    return torch.cat(labels), torch.cat(dists)


def split_empty_clusters(centroids: torch.Tensor, counts: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """faiss-style: each empty cluster takes a copy of a cluster drawn with P ~ (size - 1), both
    perturbed by +-SPLIT_EPS in alternating dimensions; the drawn cluster's count is halved."""
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if not empty:
        return centroids
    out = centroids.clone()
    sizes = counts.to(torch.float64).cpu()
    sign = torch.ones(out.shape[1], dtype=out.dtype, device=out.device)
    sign[1::2] = -1.0
    for ci in empty:
        weights = (sizes - 1).clamp_min(0)
        if weights.sum() <= 0:
            break
        cj = int(torch.multinomial(weights, 1, generator=gen))
        out[ci] = out[cj] * (1 + SPLIT_EPS * sign)
        out[cj] = out[cj] * (1 - SPLIT_EPS * sign)
        sizes[ci] = torch.floor(sizes[cj] / 2)
        sizes[cj] -= sizes[ci]
    return out


def torch_kmeans(x: torch.Tensor, k: int, niter: int, seed: int
                 ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Lloyd k-means on `x` (float32 [N, d], any device): (labels, centroids, final objective)."""
    if k > len(x):
        raise ClusteringError(f"k={k} clusters but only {len(x)} points")
    gen = torch.Generator().manual_seed(int(seed))
    x = x.float()
    centroids = x[torch.randperm(len(x), generator=gen)[:k].to(x.device)].clone()
    for _ in range(niter):
        labels, _ = _assign(x, centroids)
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty].unsqueeze(1).to(x.dtype)
        centroids = split_empty_clusters(centroids, counts, gen)
    labels, dists = _assign(x, centroids)
    return labels, centroids, float(dists.double().sum())
