"""End to end: tiny data -> tiny DeepCluster pretrain -> benchmarks -> results store -> README tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import run_all
from reports.render import check_readme


@pytest.fixture(scope="module")
def tiny_run(tiny_run_all: tuple[Path, int]) -> tuple[Path, int]:
    return tiny_run_all  # one run for the session (tests/conftest.py); the learning test reads its pretrain


def test_tiny_pipeline_fills_the_tables(tiny_run: tuple[Path, int]) -> None:
    work, code = tiny_run
    assert code == 0
    rows = [json.loads(line) for line in (work / "results.jsonl").read_text().splitlines()]
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["benchmark"] for r in ok} >= {"voc07_svm", "linear_places205"}
    assert all(r["model"] == "deepcluster-tiny" and r["pretrain_config"] == "tiny" for r in rows)
    assert all(len(r["checkpoint_sha256"]) == 64 for r in rows)
    svm = [r for r in ok if r["benchmark"] == "voc07_svm" and r["layer"] == "feature5"]
    assert len(svm) == 1 and 0.0 <= svm[0]["value"] <= 100.0
    readme = (work / "README.md").read_text()
    svm_block = readme.split("<!-- BEGIN voc_svm -->")[1].split("<!-- END voc_svm -->")[0]
    assert "deepcluster-tiny" in svm_block and "feature" in svm_block
    assert check_readme(work / "results.jsonl", work / "README.md") == ""


def test_checkpoint_is_reused_and_failures_exit_nonzero(tiny_run: tuple[Path, int], tmp_path: Path) -> None:
    work, _ = tiny_run
    ckpt = next((work / "pretrain").glob("epoch_*.pth"))
    bad_root = tmp_path / "empty"
    bad_root.mkdir()
    args = ["--ckpt", str(ckpt), "--data-root", str(bad_root), "--work-dir", str(tmp_path / "w"),
            "--benchmarks", "voc07_svm"]
    assert run_all.main(args) == 2  # nothing requested has its data: refused, nothing recorded
    assert not (tmp_path / "w" / "results.jsonl").exists()
    assert run_all.main([*args, "--allow-missing"]) == 0  # a missing dataset is a skip, not a failure
    rows = [json.loads(line) for line in (tmp_path / "w" / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["skipped"]
    assert "VOCdevkit" in rows[0]["reason"]


def test_bad_inputs_fail_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_all.main(["--benchmarks", "voc07_svn", "--tiny"]) == 2
    assert "did you mean voc07_svm" in capsys.readouterr().err
    garbage = tmp_path / "x.pth"
    garbage.write_bytes(b"not a checkpoint")
    assert run_all.main(["--ckpt", str(garbage), "--data-root", str(tmp_path)]) == 2
    assert "cannot use checkpoint" in capsys.readouterr().err
    work = tmp_path / "never"
    assert run_all.main(["--tiny", "--work-dir", str(work), "--pretrain-config", '{"reassign": 0}']) == 2
    assert "--pretrain-config: reassign must be > 0" in capsys.readouterr().err
    given = ["--ckpt", str(garbage), "--data-root", str(tmp_path), "--pretrain-config", "tiny-sobel"]
    assert run_all.main(given) == 2
    assert "applies only to the tiny pretrain" in capsys.readouterr().err
    assert not work.exists()


def test_the_lowshot_plot_lands_in_the_benchmark_folder(tmp_path: Path) -> None:
    from dcbench.results import Measurement, Provenance, ResultStore, rows_from_measurements

    prov = Provenance(model="dc", checkpoint_sha256="a" * 64, benchmark="voc07_lowshot", config_hash="c",
                      seed=0, git_sha="g")
    store = ResultStore(tmp_path / "results.jsonl")
    store.append(rows_from_measurements(prov, [Measurement("voc07", "mAP", 20.0 + k, layer="feature5", k=k,
                                                           variant="reference") for k in (1, 2)]))
    path = run_all.write_lowshot_plot(store, tmp_path / "work", "dc")
    assert path == tmp_path / "work" / "benchmarks" / "voc07_lowshot" / "voc07_lowshot_map_vs_k.png"
    assert path.stat().st_size > 1000


def test_torchrun_tiny_without_ckpt_pretrains_once_under_ddp(tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 run_all.py --tiny`: rank 0 writes the data, the tiny pretrain runs
    once with both ranks (DDP, gloo), and both evaluate that one checkpoint; rows are written once."""
    import os
    import subprocess
    import sys

    import pandas as pd

    from adapters.load import load_checkpoint

    root = Path(run_all.__file__).resolve().parent
    work = tmp_path / "torchrun"
    probe = ["linear_imagenet.lr=0", "linear_imagenet.epochs=1", "linear_imagenet.milestones=[]"]
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            str(root / "run_all.py"), "--tiny", "--work-dir", str(work), "--benchmarks", "linear_imagenet",
            "--device", "cpu", *[arg for item in probe for arg in ("--set", item)],
            "--pretrain-config", '{"base": "tiny", "epochs": 1, "reassign": 1}']  # DDP needs no more
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    log = [json.loads(line) for line in (work / "pretrain" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(len(log))) and len(log) > 1  # one pretrain, not two
    digests = [r["assignment_digests"] for r in log]  # per epoch: one per rank, and the ranks agree
    assert all(len(d) == 2 and len(set(d)) == 1 for d in digests)
    final = work / "pretrain" / f"epoch_{len(log) - 1:04d}.pth"
    rows = pd.read_json(work / "results.jsonl", lines=True, dtype=False)
    assert set(rows["status"]) == {"ok"} and set(rows["world_size"]) == {2}
    assert not rows.duplicated(["benchmark", "dataset", "layer", "metric"]).any()  # rank 0 wrote, once
    assert set(rows["checkpoint_sha256"]) == {load_checkpoint(final).sha256}  # the one pretrained file
