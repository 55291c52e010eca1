from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def _load(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def test_tiny_run_prints_every_figure_and_says_what_it_skipped(capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert _load(monkeypatch).main(["--tiny"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FIGURE ")]
    names = " ".join(lines)
    for part in ("torch k-means", "faiss-gpu", "extraction fp32 NCHW", "extraction bf16", "linear-probe step",
                 "semi-supervised step"):
        assert part in names, part
    if not torch.cuda.is_available():
        assert any("bf16" in line and "SKIPPED (no CUDA" in line for line in lines)
    assert all(("SKIPPED" in line) or any(ch.isdigit() for ch in line.split(":", 1)[1]) for line in lines)
