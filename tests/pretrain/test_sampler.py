from __future__ import annotations

import numpy as np
import pytest

from pretrain.sampler import UniformClusterSampler, num_draws, samples_per_cluster, uniform_cluster_indices


def _labels() -> np.ndarray:
    # 4 non-empty clusters of very different sizes (cluster 2 and 5 are empty), N = 100
    return np.array([0] * 70 + [1] * 20 + [3] * 9 + [4] * 1, dtype=np.int64)


def test_uniform_over_nonempty_clusters_length_n() -> None:
    labels = _labels()
    idx = uniform_cluster_indices(labels, seed=0, epoch=0)
    assert len(idx) == len(labels)
    counts = np.bincount(labels[idx], minlength=6)
    per = samples_per_cluster(100, 4)
    assert per == 26
    assert counts[2] == counts[5] == 0  # empty clusters are skipped
    assert all(per - 4 <= counts[c] <= per for c in (0, 1, 3, 4))  # 104 drawn, 4 truncated
    assert set(idx[labels[idx] == 4].tolist()) == {99}  # the singleton is drawn with replacement
    big = idx[labels[idx] == 0]
    assert len(set(big.tolist())) == len(big)  # clusters larger than `per` are drawn without replacement


def test_deterministic_per_epoch_and_varies_across_epochs() -> None:
    labels = _labels()
    a = uniform_cluster_indices(labels, seed=1, epoch=3)
    np.testing.assert_array_equal(a, uniform_cluster_indices(labels, seed=1, epoch=3))
    assert not np.array_equal(a, uniform_cluster_indices(labels, seed=1, epoch=4))
    assert not np.array_equal(a, uniform_cluster_indices(labels, seed=2, epoch=3))


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_distributed_sharding_like_distributed_sampler(world: int) -> None:
    labels = _labels()
    samplers = [UniformClusterSampler(labels, seed=0, rank=r, world_size=world) for r in range(world)]
    for s in samplers:
        s.set_epoch(5)
    shards = [list(s) for s in samplers]
    assert {len(s) for s in shards} == {len(samplers[0])} == {-(-100 // world)}
    merged = np.empty(len(shards[0]) * world, dtype=np.int64)
    for r, shard in enumerate(shards):
        merged[r::world] = shard
    global_idx = uniform_cluster_indices(labels, seed=0, epoch=5)
    np.testing.assert_array_equal(merged[:100], global_idx)  # the shards interleave to the global order
    np.testing.assert_array_equal(merged[100:], global_idx[:len(merged) - 100])  # padded by wrapping


@pytest.mark.parametrize(("reassign", "drawn"), [(2.5, 250), (0.5, 50), (0.001, 1)])
def test_reassign_draws_int_reassign_n_uniformly(reassign: float, drawn: int) -> None:
    labels = _labels()
    idx = uniform_cluster_indices(labels, seed=0, epoch=0, reassign=reassign)
    assert len(idx) == num_draws(100, reassign) == drawn  # int(reassign * N), as the reference's sampler
    if drawn > 4:
        counts = np.bincount(labels[idx], minlength=6)[[0, 1, 3, 4]]
        per = samples_per_cluster(drawn, 4)  # M // n_nonempty + 1 per cluster, then truncated to M
        assert all(per - 4 <= c <= per for c in counts), counts
    sampler = UniformClusterSampler(labels, seed=0, rank=1, world_size=2, reassign=reassign)
    assert len(sampler) == len(list(sampler)) == -(-drawn // 2)


def test_reassign_must_be_positive() -> None:
    with pytest.raises(ValueError, match="reassign must be > 0"):
        num_draws(100, 0.0)


def test_bad_rank_and_empty_labels() -> None:
    with pytest.raises(ValueError, match="rank 2 outside world size 2"):
        UniformClusterSampler(_labels(), seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="empty assignment"):
        uniform_cluster_indices(np.array([], dtype=np.int64), 0, 0)
