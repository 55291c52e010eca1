from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pretrain import checkpoint as C
from pretrain import distributed as D
from pretrain.cluster import cluster_features
from pretrain.config import TINY
from pretrain.data import read_train_list
from pretrain.metrics import read_log
from pretrain.model import DeepClusterModel
from pretrain.recluster import SALT_KMEANS, Images, derive_seed, extract_features

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_process_gloo_run_agrees_across_ranks(tiny_root: Path, tmp_path: Path) -> None:
    work = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           "-m", "pretrain", "--config", "tiny", "--epochs", "1",
           "--data-root", str(tiny_root), "--work-dir", str(work)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = read_log(work)
    assert [r["epoch"] for r in rows] == [0, 1]
    for row in rows:  # every rank hashed its own labels and head after the broadcast
        assert len(row["assignment_digests"]) == 2 and len(set(row["assignment_digests"])) == 1
        assert len(row["head_digests"]) == 2 and len(set(row["head_digests"])) == 1
    ckpt = C.load_checkpoint(work / "epoch_0001.pth")
    assert ckpt["assignments"].shape == (40,)
    saved = np.load(work / "assignments" / "epoch_0001.npy")
    np.testing.assert_array_equal(saved, ckpt["assignments"].numpy())
    # the sharded-and-gathered initial features cluster exactly like a single process's
    torch.manual_seed(TINY.seed)
    model = DeepClusterModel(TINY.num_clusters, TINY.sobel)
    listing = read_train_list(tiny_root)
    solo = D.DistInfo(0, 1, torch.device("cpu"))
    single = extract_features(model, TINY, Images(listing.paths, None), solo)
    labels = cluster_features(single, TINY.num_clusters, TINY.pca_dim, TINY.kmeans_iters,
                              derive_seed(TINY.seed, 0, SALT_KMEANS), TINY.kmeans_backend).labels
    np.testing.assert_array_equal(np.load(work / "assignments" / "epoch_0000.npy"), labels)


@pytest.mark.parametrize(("num", "world"), [(10, 1), (10, 3), (7, 2)])
def test_shard_then_gather_restores_order(num: int, world: int) -> None:
    shards = [D.shard_indices(num, D.DistInfo(r, world, torch.device("cpu"))) for r in range(world)]
    assert len({len(s) for s in shards}) == 1
    assert set(np.concatenate(shards).tolist()) == set(range(num))
    full = np.empty((len(shards[0]) * world,), dtype=np.int64)
    for r, s in enumerate(shards):
        full[r::world] = s
    np.testing.assert_array_equal(full[:num], np.arange(num))


def test_single_process_helpers_are_identity() -> None:
    info = D.DistInfo(0, 1, torch.device("cpu"))
    x = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    np.testing.assert_array_equal(D.gather_rows(x, 5, info), x.numpy()[:5])
    labels = np.array([1, 0, 2])
    assert D.broadcast_labels(labels, 3, info) is labels
    assert D.all_mean(2.5, info) == 2.5
    assert D.gather_digests("abc", info) == ["abc"]
    assert D.digest(labels) == D.digest(torch.from_numpy(labels)) != D.digest(labels[::-1].copy())
