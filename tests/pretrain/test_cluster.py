from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from pretrain.cluster import (
    ClusteringError,
    check_cluster_inputs,
    cluster_features,
    kmeans,
    pca_whiten_l2,
    resolve_backend,
    split_empty_clusters,
    torch_kmeans,
)


def _blobs(n_per: int = 60, k: int = 6, d: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 5, size=(k, d))
    return np.concatenate([c + rng.normal(0, 0.5, size=(n_per, d)) for c in centers]).astype(np.float32)


def test_pca_whitening_then_l2_properties() -> None:
    rng = np.random.default_rng(0)
    scales = np.geomspace(100, 0.1, 32)  # strongly anisotropic input
    x = (rng.normal(size=(2000, 32)) * scales).astype(np.float32)
    y = pca_whiten_l2(x, 8)
    assert y.shape == (2000, 8) and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    # whitened: every retained direction carries the same energy, ~1/8 of each unit row
    energy = (y**2).mean(axis=0)
    np.testing.assert_allclose(energy, 1 / 8, rtol=0.15)
    # the retained directions are the top principal components (the first 8 input axes here)
    assert np.abs(np.corrcoef(y.T, x[:, :8].T)[:8, 8:]).max(axis=1).min() > 0.5


def test_pca_whitening_matches_faiss_pcamatrix_up_to_sign() -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(500, 24)) * np.geomspace(10, 1, 24) + 3.0).astype(np.float32)
    mat = faiss.PCAMatrix(24, 6, -0.5)
    mat.train(x)
    ref = mat.apply(x)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    ours = pca_whiten_l2(x, 6)
    signs = np.sign((ours * ref).sum(axis=0))
    np.testing.assert_allclose(ours * signs, ref, atol=2e-4)


def test_rank_deficient_features_drop_noise_components() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 2)).astype(np.float32) @ rng.normal(size=(2, 16)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="only 2 of 8 PCA components"):
        y = pca_whiten_l2(x, 8)
    assert np.isfinite(y).all() and np.abs(y[:, 2:]).max() == 0
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)


def test_nan_features_error_names_row_count() -> None:
    x = np.ones((50, 16), dtype=np.float32)
    x[[3, 7, 9], 2] = np.nan
    with pytest.raises(ClusteringError, match="3 of 50 feature rows contain NaN"):
        pca_whiten_l2(x, 4)


def test_input_checks_fail_clearly() -> None:
    with pytest.raises(ClusteringError, match="k=20 clusters needs at least k images.*has 10"):
        check_cluster_inputs(10, 2048, 20, 4)
    with pytest.raises(ClusteringError, match="more than 16 images"):
        check_cluster_inputs(16, 2048, 4, 16)
    with pytest.raises(ClusteringError, match="exceeds the feature dimension"):
        check_cluster_inputs(100, 8, 4, 16)
    with pytest.raises(ClusteringError, match="k=30"):
        kmeans(np.zeros((20, 4), np.float32), 30, 5, 0, "faiss")


def test_torch_kmeans_objective_close_to_faiss() -> None:
    x = pca_whiten_l2(_blobs(d=24), 12)
    ours = kmeans(x, 6, 20, seed=3, backend="torch")
    ref = kmeans(x, 6, 20, seed=3, backend="faiss")
    assert ours.backend == "torch-cpu" and ref.backend == "faiss-cpu"
    assert ours.objective == pytest.approx(ref.objective, rel=0.05)
    assert ours.labels.dtype == np.int64 and ours.labels.shape == (360,)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_kmeans_reproducible_per_seed(backend: str) -> None:
    x = pca_whiten_l2(_blobs(k=10, n_per=20, d=16), 10)
    a = kmeans(x, 15, 20, seed=5, backend=backend)
    b = kmeans(x, 15, 20, seed=5, backend=backend)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.objective == b.objective


def test_empty_cluster_split_copies_a_big_cluster() -> None:
    centroids = torch.tensor([[1.0, 2.0], [9.0, 9.0], [5.0, 5.0]])
    counts = torch.tensor([10, 0, 1])  # a size-1 cluster is never split (P ~ size - 1)
    out = split_empty_clusters(centroids, counts, torch.Generator().manual_seed(0))
    eps = 1 / 1024
    torch.testing.assert_close(out[1], torch.tensor([1.0 * (1 + eps), 2.0 * (1 - eps)]))
    torch.testing.assert_close(out[0], torch.tensor([1.0 * (1 - eps), 2.0 * (1 + eps)]))
    torch.testing.assert_close(out[2], centroids[2])
    torch.testing.assert_close(centroids[1], torch.tensor([9.0, 9.0]))  # input untouched


def test_torch_kmeans_recovers_blobs_from_a_bad_start() -> None:
    x = torch.from_numpy(_blobs(n_per=30, k=4, d=4, seed=1))
    labels, centroids, objective = torch_kmeans(x, 4, 20, seed=0)
    assert len(torch.unique(labels)) == 4 and torch.isfinite(centroids).all()
    assert objective / len(x) < 4 * 0.5**2 * 1.5  # close to the within-blob variance


def test_duplicate_points_count_empty_clusters() -> None:
    x = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)  # only 3 distinct points
    for backend in ("faiss", "torch"):
        result = kmeans(x, 5, 10, seed=0, backend=backend)
        assert result.num_empty == 5 - len(np.unique(result.labels)) >= 2
        assert result.objective == pytest.approx(0.0, abs=1e-4)


def test_cluster_features_end_to_end_and_backend_names() -> None:
    feats = _blobs(n_per=40, k=5, d=64)
    result = cluster_features(feats, 5, 16, 20, seed=0, backend="faiss")
    assert result.num_empty == 0 and set(result.labels.tolist()) == set(range(5))
    assert resolve_backend("faiss") in {"faiss-cpu", "faiss-gpu"}
    with pytest.raises(ClusteringError, match="unknown k-means backend"):
        resolve_backend("sklearn")


def test_gram_path_equals_covariance_path_when_fewer_points_than_dims() -> None:
    from pretrain.cluster import _gram_eigh

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 64)).astype(np.float32) * np.linspace(0.5, 3.0, 64, dtype=np.float32)
    mean = torch.from_numpy(x).double().mean(0).float()
    top, vecs = _gram_eigh(x, mean, 16, torch.device("cpu"))
    xc = torch.from_numpy(x).double() - mean.double()
    evals, evecs = torch.linalg.eigh(xc.T @ xc / len(x))
    ref_top, ref_vecs = evals.flip(0)[:16], evecs.flip(1)[:, :16]
    torch.testing.assert_close(top, ref_top, rtol=1e-6, atol=1e-9)
    cos = (vecs * ref_vecs).sum(0).abs()  # eigenvectors agree up to sign
    torch.testing.assert_close(cos, torch.ones_like(cos), rtol=0, atol=1e-6)
    top_pad, vecs_pad = _gram_eigh(x, mean, 40, torch.device("cpu"))
    assert top_pad.shape == (40,) and vecs_pad.shape == (64, 40)
    assert torch.all(top_pad[30:] == 0)
