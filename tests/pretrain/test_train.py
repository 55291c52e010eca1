from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import pretrain
from dcbench.backbone import build_resnet50
from dcbench.config import ConfigError, replace
from pretrain import checkpoint as C
from pretrain.__main__ import main
from pretrain.cluster import ClusteringError
from pretrain.config import TINY, TINY_SOBEL
from pretrain.metrics import read_log

TWO = replace(TINY, epochs=2)  # the tiny config, two epochs: what these tests check needs no more
LOG_KEYS = {"epoch", "loss", "clustering_time_s", "kmeans_objective", "empty_clusters",
            "cluster_size_min", "cluster_size_median", "cluster_size_max", "nmi_prev", "nmi_gt"}


@pytest.fixture(scope="module")
def two_epochs(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("two_epochs")
    final = pretrain.run(TWO, tiny_root, work)
    assert final == work / "epoch_0002.pth"
    return work


def test_two_epochs_checkpoint_has_documented_keys(two_epochs: Path) -> None:
    ckpt = torch.load(two_epochs / "epoch_0002.pth", map_location="cpu", weights_only=True)
    assert set(ckpt) == set(C.REQUIRED_KEYS)
    assert ckpt["format"] == "deepcluster-bench/pretrain/v1"
    assert ckpt["epoch"] == 2 and ckpt["config_name"] == "tiny" and ckpt["sobel"] is False
    assert ckpt["config"]["num_clusters"] == TINY.num_clusters
    assert set(ckpt["head"]) == {"weight", "bias"}
    assert ckpt["head"]["weight"].shape == (TINY.num_clusters, 2048)
    assert ckpt["assignments"].dtype == torch.int64 and ckpt["assignments"].shape == (40,)
    assert not any(k.startswith("fc.") for k in ckpt["backbone"])
    build_resnet50(sobel=False).load_state_dict(ckpt["backbone"], strict=True)  # torchvision keys
    latest = torch.load(two_epochs / "latest.pth", map_location="cpu", weights_only=True)
    assert latest["epoch"] == 2


def test_two_epochs_outputs_log_plot_assignments(two_epochs: Path) -> None:
    rows = read_log(two_epochs)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert all(LOG_KEYS <= set(r) for r in rows)
    assert rows[0]["loss"] is None and rows[0]["nmi_prev"] is None
    assert all(np.isfinite(r["loss"]) and 0 <= r["nmi_prev"] <= 1 for r in rows[1:])
    assert all(0 <= r["nmi_gt"] <= 1 for r in rows)
    assert (two_epochs / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = [np.load(two_epochs / "assignments" / f"epoch_{e:04d}.npy") for e in range(3)]
    assert all(a.shape == (40,) and a.max() < TINY.num_clusters for a in saved)
    ckpt = C.load_checkpoint(two_epochs / "epoch_0002.pth")
    np.testing.assert_array_equal(ckpt["assignments"].numpy(), saved[2])
    assert not list(two_epochs.glob(".*.tmp"))  # nothing half-written


def test_k_larger_than_dataset_fails_before_any_work(tiny_root: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    with pytest.raises(ClusteringError, match="k=100 clusters needs at least k images.*has 40"):
        pretrain.run(replace(TINY, num_clusters=100), tiny_root, work)
    assert not work.exists()


def test_resume_reaches_the_uninterrupted_weights(two_epochs: Path, tiny_root: Path, tmp_path: Path) -> None:
    work = tmp_path / "resumed"
    first = pretrain.run(replace(TINY, epochs=1), tiny_root, work)
    assert first == work / "epoch_0001.pth"
    final = pretrain.run(TWO, tiny_root, work)  # auto-resume from the work dir
    resumed = C.load_checkpoint(final)
    straight = C.load_checkpoint(two_epochs / "epoch_0002.pth")
    assert resumed["epoch"] == straight["epoch"] == 2
    for key, value in straight["backbone"].items():
        torch.testing.assert_close(resumed["backbone"][key], value, rtol=0, atol=0, msg=key)
    torch.testing.assert_close(resumed["head"]["weight"], straight["head"]["weight"], rtol=0, atol=0)
    torch.testing.assert_close(resumed["assignments"], straight["assignments"], rtol=0, atol=0)
    assert [r["epoch"] for r in read_log(work)] == [0, 1, 2]


def test_explicit_resume_and_corrupt_latest_fallback(two_epochs: Path, tiny_root: Path,
                                                     tmp_path: Path) -> None:
    work = tmp_path / "copy"
    shutil.copytree(two_epochs, work)
    (work / "latest.pth").write_bytes((work / "latest.pth").read_bytes()[:1000])  # truncated
    with pytest.warns(RuntimeWarning, match="latest.pth"):
        final = pretrain.run(TWO, tiny_root, work)  # already complete: nothing to train
    assert final == work / "epoch_0002.pth"
    with pytest.raises(C.CheckpointError, match="cannot read"):
        pretrain.run(TWO, tiny_root, work, resume=work / "latest.pth")


def test_resume_refuses_a_different_config(two_epochs: Path, tiny_root: Path, tmp_path: Path) -> None:
    work = tmp_path / "other"
    shutil.copytree(two_epochs, work)
    with pytest.raises(ConfigError, match="num_clusters.*another work dir or delete"):
        pretrain.run(replace(TINY, num_clusters=8, epochs=3), tiny_root, work)


def test_cli_sobel_tiny_runs(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "sobel"
    assert main(["--config", TINY_SOBEL.name, "--data-root", str(tiny_root), "--work-dir", str(work),
                 "--epochs", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(work / "epoch_0001.pth")
    ckpt = C.load_checkpoint(work / "epoch_0001.pth")
    assert ckpt["sobel"] is True and ckpt["backbone"]["conv1.weight"].shape[1] == 2
    assert json.loads((work / "log.jsonl").read_text().splitlines()[-1])["epoch"] == 1


def test_a_checkpoint_that_predates_a_config_field_resumes_at_its_default(two_epochs: Path, tiny_root: Path,
                                                                          tmp_path: Path) -> None:
    old = C.load_checkpoint(two_epochs / "epoch_0002.pth")
    old["config"] = {k: v for k, v in old["config"].items() if k not in ("arch", "conv_init")}
    work = tmp_path / "old"
    work.mkdir()
    C.save_checkpoint(work / "epoch_0002.pth", old)
    assert pretrain.run(TWO, tiny_root, work) == work / "epoch_0002.pth"  # complete: nothing to redo
    with pytest.raises(ConfigError, match="arch"):
        pretrain.run(replace(TWO, arch="resnet18"), tiny_root, work)
