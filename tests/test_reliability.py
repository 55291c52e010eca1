"""Every bad input ends in one clear line and the right exit code, checked before the long work.

One table row per bad input (issue 18, and the checkpoint cases handled before it): the exit code,
the key words of the message, no traceback, and -- where the run refuses to start (exit 2) -- a
results store and README that are byte-identical afterwards. The data trees are minimal but real
layouts (valid JPEGs, VOC XML, ImageNet class folders); every case is refused or failed by the
up-front checks, so no benchmark trains here.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import PIL.Image
import pytest
import torch
import torchvision

import run_all
from dcbench.datasets import VOC_CLASSES
from dcbench.results import Provenance, ResultStore, status_row
from evaluators.suite.preflight import check_datasets
from reports.__main__ import main as reports_main
from reports.render import begin_marker, end_marker
from reports.tables import TABLE_IDS

XML = """<annotation>
  <size><width>32</width><height>24</height></size>
  <object>
    <name>dog</name>
    <difficult>0</difficult>
    <bndbox>
      <xmin>{xmin}</xmin>
      <ymin>2</ymin>
      <xmax>{xmax}</xmax>
      <ymax>20</ymax>
    </bndbox>
  </object>
</annotation>
"""


class Evil:
    """Pickles a call of a Python function: what the weights-only loader must refuse."""

    def __reduce__(self) -> tuple[object, ...]:
        return (os.getcwd, ())


@dataclass(frozen=True)
class Env:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def store(self) -> Path:
        return self.work / "results.jsonl"

    @property
    def readme(self) -> Path:
        return self.root / "README.md"

    @property
    def ckpt(self) -> Path:
        return self.root / "r50.pth"

    def voc(self, year: str = "2007") -> Path:
        return self.data / "VOCdevkit" / f"VOC{year}"

    def run(self, *extra: str, ckpt: Path | None = None, benchmarks: str = "voc07_svm") -> list[str]:
        return ["--ckpt", str(ckpt or self.ckpt), "--data-root", str(self.data), "--work-dir", str(self.work),
                "--readme", str(self.readme), "--device", "cpu", "--benchmarks", benchmarks, *extra]


def _jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.new("RGB", (32, 24), (120, 30, 200)).save(path, format="JPEG")


def _voc(root: Path, splits: dict[str, list[str]]) -> None:
    for split, ids in splits.items():
        main = root / "ImageSets" / "Main"
        main.mkdir(parents=True, exist_ok=True)
        (main / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for cls in VOC_CLASSES:
            labels = "".join(f"{i} {1 if cls == 'dog' else -1}\n" for i in ids)
            (main / f"{cls}_{split}.txt").write_text(labels)
        for i in ids:
            _jpeg(root / "JPEGImages" / f"{i}.jpg")
            (root / "Annotations").mkdir(exist_ok=True)
            (root / "Annotations" / f"{i}.xml").write_text(XML.format(xmin=3, xmax=30))


def _imagenet(root: Path) -> None:
    for split in ("train", "val"):
        for wnid in ("n01", "n02"):
            _jpeg(root / split / wnid / f"{wnid}_{split}_1.JPEG")


@functools.cache
def _lazy_state(arch: str) -> dict[str, torch.Tensor]:
    """The model's state dict as one-element tensors expanded to shape (files of a few KB)."""
    with torch.device("meta"):
        model = getattr(torchvision.models, arch)()
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in model.state_dict().items()
            if not k.startswith("fc.")}


def _make_env(root: Path) -> Env:
    env = Env(root)
    _voc(env.voc("2007"), {"trainval": ["000001", "000002"], "test": ["000003"]})
    _voc(env.voc("2012"), {"trainval": ["2012_000001"]})
    _imagenet(env.data / "imagenet")
    torch.save(_lazy_state("resnet50"), env.ckpt)
    prov = Provenance(model="earlier", checkpoint_sha256="e" * 64, benchmark="voc07_svm", config_hash="c",
                      seed=0, git_sha="g")
    ResultStore(env.store).append([status_row(prov, "skipped", "an earlier run")])
    blocks = "".join(f"{begin_marker(t)}\nold\n{end_marker(t)}\n" for t in TABLE_IDS)
    env.readme.write_text("# Mine\n" + blocks)
    return env


@pytest.fixture()
def env(tmp_path: Path) -> Env:
    return _make_env(tmp_path)


# ----------------------------------------------------------------------------- bad inputs
def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _tear(store: Path) -> None:
    with open(store, "ab") as fh:
        fh.write(b'{"model": "m", "va')  # a writer killed mid-row


def _drop_end_marker(env: Env) -> None:
    text = env.readme.read_text().replace(end_marker("det_coco") + "\n", "")
    env.readme.write_text(text)


def _ckpt(env: Env, name: str, write: Callable[[Path], None]) -> Path:
    path = env.root / name
    write(path)
    return path


def _resnet18(path: Path) -> None:
    torch.save(_lazy_state("resnet18"), path)


def _foreign_key(path: Path) -> None:
    torch.save({**_lazy_state("resnet50"), "projector.weight": torch.zeros(2, 2)}, path)


def _evil(legacy: bool) -> Callable[[Path], None]:
    return lambda path: torch.save({"conv1.weight": torch.zeros(1), "x": Evil()}, path,
                                   _use_new_zipfile_serialization=not legacy)


def _raw_pickle(path: Path) -> None:
    with open(path, "wb") as fh:  # pickle's own default protocol (>= 4): torch's loader trips on FRAME
        pickle.dump({"conv1.weight": 1.0, "x": Evil()}, fh)


def _truncated(env: Env) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(env.ckpt.read_bytes()[: env.ckpt.stat().st_size // 2])


def _cuda_device() -> str:
    return f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[Env], list[str]]
    code: int
    words: tuple[str, ...]
    prepare: Callable[[Env], object] = lambda env: None
    cli: Callable[[list[str]], int] = run_all.main


CASES = [
    # --- datasets: present but incomplete or malformed -> that benchmark fails (exit 1), named
    Case("voc_listed_jpeg_deleted", lambda e: e.run(), 1,
         ("failed: voc07_svm", "VOC2007 is incomplete", "1 of 2 listed image(s) missing", "000002.jpg"),
         prepare=lambda e: (e.voc() / "JPEGImages" / "000002.jpg").unlink()),
    Case("voc_box_not_a_number", lambda e: e.run(benchmarks="det_voc0712"), 1,
         ("failed: det_voc0712", "000003.xml line 7", "<xmin>", "'5a', not a number"),
         prepare=lambda e: _write(e.voc() / "Annotations" / "000003.xml", XML.format(xmin="5a", xmax=30))),
    Case("voc_inverted_box", lambda e: e.run(benchmarks="det_voc0712"), 1,
         ("failed: det_voc0712", "000001.xml line 9", "<xmax>", "inverted box"),
         prepare=lambda e: _write(e.voc() / "Annotations" / "000001.xml", XML.format(xmin=30, xmax=3))),
    Case("voc_xml_not_well_formed", lambda e: e.run(benchmarks="det_voc0712"), 1,
         ("failed: det_voc0712", "000002.xml line 9", "not well-formed"),
         prepare=lambda e: _write(e.voc() / "Annotations" / "000002.xml", XML.format(xmin=3, xmax="30</x>"))),
    Case("imagenet_empty_class_folder", lambda e: e.run(benchmarks="linear_imagenet"), 1,
         ("failed: linear_imagenet", "class folder(s) without images", "n03"),
         prepare=lambda e: (e.data / "imagenet" / "train" / "n03").mkdir()),
    # --- refused before running (exit 2): store and README untouched
    Case("readme_begin_without_end", lambda e: e.run(), 2,
         ("README.md line", "BEGIN det_coco", "no matching"), prepare=_drop_end_marker),
    Case("device_cuda_without_cuda", lambda e: e.run("--device", _cuda_device()), 2,
         ("--device cuda", "CUDA")),
    Case("benchmarks_empty", lambda e: e.run(benchmarks=""), 2, ("--benchmarks ''", "names no benchmark")),
    Case("benchmark_unknown", lambda e: e.run(benchmarks="voc07_svn"), 2, ("unknown benchmark", "voc07_svm")),
    Case("tiny_on_a_real_folder", lambda e: ["--tiny", "--data-root", str(e.data), "--work-dir", str(e.work),
                                             "--readme", str(e.readme), "--device", "cpu"], 2,
         ("--tiny --data-root", "not a tiny data tree")),
    Case("data_root_mistyped", lambda e: [*e.run()[:2], "--data-root", str(e.root / "dtaa"), *e.run()[4:]], 2,
         ("--data-root", "dtaa", "does not exist")),
    Case("all_data_missing", lambda e: e.run(benchmarks="linear_places205,seg_cityscapes"), 2,
         ("no dataset of the requested benchmark", "Places205: missing", "Expected layout",
          "--allow-missing")),
    Case("work_dir_is_a_file", lambda e: [*e.run()[:4], "--work-dir", str(e.ckpt), *e.run()[6:]], 2,
         ("--work-dir", "not a folder")),
    Case("ckpt_missing", lambda e: e.run(ckpt=e.root / "nope.pth"), 2,
         ("cannot use checkpoint", "not found")),
    Case("ckpt_empty", lambda e: e.run(ckpt=_ckpt(e, "e.pth", lambda p: p.write_bytes(b""))), 2,
         ("cannot use checkpoint", "empty (0 bytes)")),
    Case("ckpt_text", lambda e: e.run(ckpt=_ckpt(e, "t.pth", lambda p: p.write_text("weights?"))), 2,
         ("cannot use checkpoint", "not a readable torch checkpoint")),
    Case("ckpt_truncated", lambda e: e.run(ckpt=_ckpt(e, "h.pth", _truncated(e))), 2,
         ("cannot use checkpoint", "not a readable torch checkpoint")),
    Case("ckpt_malicious_zip", lambda e: e.run(ckpt=_ckpt(e, "z.pth", _evil(legacy=False))), 2,
         ("pickles Python object", "getcwd", "weights_only=True")),
    Case("ckpt_malicious_legacy", lambda e: e.run(ckpt=_ckpt(e, "l.pth", _evil(legacy=True))), 2,
         ("pickles Python object", "getcwd", "weights_only=True")),
    Case("ckpt_malicious_raw_pickle", lambda e: e.run(ckpt=_ckpt(e, "p.pth", _raw_pickle)), 2,
         ("pickles Python object", "getcwd", "weights_only=True")),
    Case("ckpt_resnet18", lambda e: e.run(ckpt=_ckpt(e, "r18.pth", _resnet18)), 2,
         ("not a recognised ResNet-50 checkpoint", "missing", "layer1.0.conv3.weight", "wrong shape")),
    Case("ckpt_foreign_key", lambda e: e.run(ckpt=_ckpt(e, "fk.pth", _foreign_key)), 2,
         ("not a recognised ResNet-50 checkpoint", "unmatched keys", "projector.weight")),
    # --- the store: a torn last line is reported and ignored, never a traceback
    Case("store_torn_line_reports",
         lambda e: ["--results", str(e.store), "--readme", str(e.readme), "--check"], 1,
         ("not whole JSON rows", "is stale"), prepare=lambda e: _tear(e.store), cli=reports_main),
]


def _snapshot(env: Env) -> tuple[bytes, bytes]:
    return env.store.read_bytes(), env.readme.read_bytes()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    case.prepare(env)
    argv = case.argv(env)
    before = _snapshot(env)
    code = case.cli(argv)
    err = capsys.readouterr().err
    assert code == case.code, err
    assert all(w in err for w in case.words), err
    assert "Traceback" not in err
    if case.cli is run_all.main:
        assert len([line for line in err.splitlines() if line.startswith(("error:", "failed:"))]) == 1, err
    if code == 2:
        assert _snapshot(env) == before  # refused before running: nothing written
    if code == 1 and case.cli is run_all.main:  # the failure is recorded, with the same reason
        failed = [r for r in ResultStore(env.store).scan().records if r["status"] == "failed"]
        assert len(failed) == 1 and all(w in failed[0]["reason"] for w in case.words[1:]), failed


def test_pristine_trees_pass_the_dataset_checks(env: Env) -> None:
    checks = check_datasets(["voc07_svm", "det_voc0712", "linear_imagenet", "linear_places205"], env.data,
                            tiny=True)
    found = [(c.benchmark, c.status) for c in checks]
    assert found == [("voc07_svm", None), ("det_voc0712", None), ("linear_imagenet", None),
                     ("linear_places205", "skipped")]


def test_torn_store_line_then_a_run_appends_whole_rows(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    _tear(env.store)
    (env.voc() / "JPEGImages" / "000001.jpg").unlink()
    assert run_all.main(env.run()) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "torn line" in err
    scan = ResultStore(env.store).scan()
    assert scan.bad_lines == [2] and [r["status"] for r in scan.records] == ["skipped", "failed"]
    assert begin_marker("voc_svm") in env.readme.read_text()


def test_missing_data_allowed_is_recorded_as_skipped(env: Env) -> None:
    assert run_all.main(env.run("--allow-missing", benchmarks="linear_places205")) == 0
    rows = [json.loads(line) for line in env.store.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["skipped", "skipped"] and "Places205" in rows[1]["reason"]


def test_unexpected_crash_is_one_line_and_a_logged_traceback(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr("evaluators.suite.launchers.run_suite", boom)  # the in-process launcher's
    assert run_all.main(env.run(benchmarks="voc07_svm")) == 1
    err = capsys.readouterr().err
    assert "error: RuntimeError: disk on fire; traceback in" in err and "Traceback" not in err
    assert "Traceback" in (env.work / run_all.LOG_NAME).read_text()
    assert run_all.main(env.run("--verbose", benchmarks="voc07_svm")) == 1
    assert "Traceback" in capsys.readouterr().err


def test_cases_cover_every_bad_input_of_the_issue() -> None:
    ids = {c.id for c in CASES}
    assert {"voc_listed_jpeg_deleted", "voc_box_not_a_number", "readme_begin_without_end",
            "device_cuda_without_cuda", "tiny_on_a_real_folder", "ckpt_malicious_legacy",
            "store_torn_line_reports", "imagenet_empty_class_folder", "voc_inverted_box",
            "benchmarks_empty"} <= ids
    assert all(dataclasses.is_dataclass(c) for c in CASES)


def test_independent_problems_are_reported_together(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(env)
    _drop_end_marker(env)
    readme = env.readme.read_bytes()
    argv = [*env.run("--device", _cuda_device(), benchmarks="")[:2], "--data-root", str(env.root / "dtaa"),
            *env.run("--device", _cuda_device(), benchmarks="")[4:]]
    assert run_all.main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 4, errors
    words = ("--benchmarks", "--device", "README.md line", "dtaa")
    assert all(w in e for w, e in zip(words, errors, strict=True)), errors
    assert _snapshot(env) == (before[0], readme)
