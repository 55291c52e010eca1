from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

import dcbench.tiny as tiny
from dcbench.datasets.imagenet import read_imagenet
from dcbench.datasets.voc import VOC_CLASSES, read_voc_cls
from dcbench.fileio import sha256_file, tmp_name
from dcbench.tiny import MARKER, is_complete, make_tiny
from dcbench.tiny.__main__ import main as tiny_main
from evaluators.svm.samples import infeasible


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tree(tiny_tree: Path) -> Path:
    return tiny_tree  # the session's one full tree (tests/conftest.py)


def test_every_layout_is_written(tree: Path) -> None:
    for rel in ("imagenet/meta/train_1percent.txt", "VOCdevkit/VOC2007/ImageSets/Main/test.txt",
                "VOCdevkit/VOC2012/ImageSets/Segmentation/aug.txt", "coco/annotations/instances_val2017.json",
                "cityscapes/gtFine/val", "inaturalist2018/train2018.json",
                "places205/trainvalsplit_places205/val_places205.csv"):
        assert (tree / rel).exists(), rel
    assert is_complete(tree, 0)
    assert json.loads((tree / MARKER).read_text())["seed"] == 0
    assert not [p for p in tree.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_same_seed_gives_identical_bytes(tree: Path, tmp_path: Path) -> None:
    again = make_tiny(tmp_path / "again", seed=0)
    assert _hashes(again) == _hashes(tree)


def test_other_seed_gives_other_images(tree: Path, tmp_path: Path) -> None:
    other = make_tiny(tmp_path / "other", seed=1, datasets=["imagenet"])
    ours = _hashes(tree / "imagenet")
    theirs = _hashes(other / "imagenet")
    assert set(ours) == set(theirs)  # same layout and file names
    assert sum(ours[k] != theirs[k] for k in ours) > 0.9 * len(ours)


def test_complete_tree_is_left_alone(tree: Path) -> None:
    before = (tree / MARKER).stat().st_mtime_ns
    assert make_tiny(tree, seed=0) == tree
    assert (tree / MARKER).stat().st_mtime_ns == before


def test_more_datasets_replace_a_smaller_tree(tmp_path: Path) -> None:
    out = make_tiny(tmp_path / "d", datasets=["places205"])
    assert not (out / "inaturalist2018").exists()
    make_tiny(out, datasets=["places205", "inat18"])
    assert (out / "inaturalist2018" / "val2018.json").exists()
    assert is_complete(out, 0, ["inat18", "places205"]) and not is_complete(out, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_refuses_to_replace_foreign_folder(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not a dcbench tiny tree"):
        make_tiny(real, datasets=["places205"])
    assert (real / "precious.txt").read_text() == "x"


def test_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(root: Path, rng: np.random.Generator) -> None:
        (root / "half.txt").write_text("half")
        raise RuntimeError("interrupted")

    monkeypatch.setitem(tiny.DATASETS, "places205", (Path("places205"), boom))
    with pytest.raises(RuntimeError, match="interrupted"):
        make_tiny(tmp_path / "d", datasets=["places205"])
    assert list(tmp_path.iterdir()) == []


def test_unknown_dataset_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tiny dataset"):
        make_tiny(tmp_path / "d", datasets=["mnist"])


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tiny_main(["--out", str(tmp_path / "cli"), "--seed", "3", "--only", "places205"]) == 0
    assert is_complete(tmp_path / "cli", 3, ["places205"])
    assert "ready" in capsys.readouterr().out


def test_imagenet_images_are_learnable(tree: Path) -> None:
    """Nearest class mean on 16 px thumbnails must beat chance (10%) by far: classes are visual."""

    def features(split: str) -> tuple[np.ndarray, np.ndarray]:
        data = read_imagenet(tree / "imagenet", split)  # type: ignore[arg-type]
        rows = [np.asarray(PIL.Image.open(p).convert("RGB").resize((16, 16)), np.float32).ravel()
                for p in data.paths]
        return np.stack(rows), data.labels

    train_x, train_y = features("train")
    val_x, val_y = features("val")
    means = np.stack([train_x[train_y == c].mean(0) for c in range(10)])
    pred = ((val_x[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == val_y).mean() > 0.6


def test_voc07_trainval_supports_low_shot_k_up_to_16(tree: Path) -> None:
    labels = read_voc_cls(tree / "VOCdevkit" / "VOC2007", "trainval").labels
    assert all(infeasible(labels, k, VOC_CLASSES) is None for k in (1, 2, 4, 8, 16))
    assert all(infeasible(labels, k, VOC_CLASSES) is not None for k in (32, 64, 96))  # skipped, with reason
    assert len(read_voc_cls(tree / "VOCdevkit" / "VOC2007", "test").labels) == 100


def test_temporary_folder_of_a_killed_maker_is_swept(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid no live process owns
    leftover = tmp_path / tmp_name("d").replace(f".{os.getpid()}.", f".{proc.pid}.")
    (leftover / "imagenet").mkdir(parents=True)
    make_tiny(tmp_path / "d", datasets=["places205"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_a_larger_request_keeps_the_datasets_already_there(tmp_path: Path) -> None:
    out = make_tiny(tmp_path / "d", datasets=["places205"])
    make_tiny(out, datasets=["inat18"])
    assert is_complete(out, 0, ["inat18", "places205"])
