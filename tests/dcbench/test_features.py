from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from dcbench.backbone import FeatureTaps, build_resnet50
from dcbench.distributed import init_distributed, shutdown
from dcbench.features import FeatureKey, extract_features, fingerprint
from dcbench.fileio import tmp_name


class _Images(Dataset):
    def __init__(self, n: int) -> None:
        self.images = torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], index


class _Taps(nn.Module):
    """Counts forward passes; 'a' and 'b' are deterministic functions of the image."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor, taps: Sequence[str]) -> dict[str, torch.Tensor]:
        self.calls += 1
        self.modes.append(self.training)
        table = {"a": x.flatten(1)[:, :5] * 2, "b": x.mean(dim=(2, 3))}
        return {t: table[t] for t in taps}


KEY = FeatureKey("f" * 64, "toy", "train", "id8")


def _never() -> nn.Module:
    raise AssertionError("the model must not be built when the cache is complete")


def test_one_pass_then_cache_reuse(tmp_path: Path) -> None:
    data = _Images(10)
    model = _Taps()
    first = extract_features(lambda: model, data, ["a", "b"], tmp_path, KEY, torch.device("cpu"),
                             batch_size=4, progress=False)
    assert model.calls == 3  # ONE pass over 10 images in batches of 4, both taps together
    assert model.modes == [False, False, False]  # eval mode
    assert first["a"].shape == (10, 5) and first["a"].dtype == np.float32
    np.testing.assert_allclose(first["a"], data.images.flatten(1)[:, :5].numpy() * 2, rtol=1e-6)
    again = extract_features(_never, data, ["b", "a"], tmp_path, KEY, torch.device("cpu"), progress=False)
    np.testing.assert_array_equal(again["b"], first["b"])
    assert KEY.path(tmp_path, "a").exists() and not list(tmp_path.rglob("*.tmp"))


def test_only_missing_taps_are_computed(tmp_path: Path) -> None:
    data = _Images(6)
    extract_features(_Taps, data, ["a"], tmp_path, KEY, torch.device("cpu"), batch_size=6, progress=False)
    before = KEY.path(tmp_path, "a").stat().st_mtime_ns
    model = _Taps()
    extract_features(lambda: model, data, ["a", "b"], tmp_path, KEY, torch.device("cpu"), progress=False)
    assert model.calls == 1
    assert KEY.path(tmp_path, "a").stat().st_mtime_ns == before


def test_other_images_invalidate_the_cache(tmp_path: Path) -> None:
    data = _Images(6)
    extract_features(_Taps, data, ["a"], tmp_path, KEY, torch.device("cpu"), progress=False,
                     images=fingerprint(["x", "y"]))
    model = _Taps()
    extract_features(lambda: model, data, ["a"], tmp_path, KEY, torch.device("cpu"), progress=False,
                     images=fingerprint(["x", "z"]))
    assert model.calls == 1
    model = _Taps()
    extract_features(lambda: model, _Images(5), ["a"], tmp_path, KEY, torch.device("cpu"), progress=False,
                     images=fingerprint(["x", "z"]))
    assert model.calls == 1  # a different row count is stale too


def test_failed_pass_leaves_no_file(tmp_path: Path) -> None:
    class Broken(_Taps):
        def forward(self, x: torch.Tensor, taps: Sequence[str]) -> dict[str, torch.Tensor]:
            if self.calls == 1:
                raise RuntimeError("boom")
            return super().forward(x, taps)

    with pytest.raises(RuntimeError, match="boom"):
        extract_features(Broken, _Images(6), ["a"], tmp_path, KEY, torch.device("cpu"), batch_size=2,
                         progress=False)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_real_feature_taps(tmp_path: Path) -> None:
    torch.manual_seed(0)
    taps = FeatureTaps(build_resnet50())
    taps.train()
    out = extract_features(taps, _Images(2), ["feature5", "avgpool"], tmp_path, KEY, torch.device("cpu"),
                           progress=False)
    assert out["feature5"].shape == (2, 8192) and out["avgpool"].shape == (2, 2048)
    assert taps.training  # the caller's module is left in the mode it had
    assert taps.resnet.conv1.weight.is_contiguous()  # and in its memory layout (channels_last ran inside)
    plain = extract_features(taps, _Images(2), ["feature5", "avgpool"], tmp_path / "nchw", KEY,
                             torch.device("cpu"), progress=False, channels_last=False)
    for tap in ("feature5", "avgpool"):  # the layout only changes float rounding
        np.testing.assert_allclose(out[tap], plain[tap], rtol=1e-4, atol=1e-5)


def test_precision_is_part_of_the_key_and_bf16_needs_cuda(tmp_path: Path) -> None:
    bf16 = FeatureKey("f" * 64, "toy", "train", "id8", precision="bf16")
    assert bf16.path(tmp_path, "a") != KEY.path(tmp_path, "a") and "bf16" in bf16.path(tmp_path, "a").name
    with pytest.raises(ValueError, match="precision"):
        FeatureKey("f" * 64, "toy", "train", "id8", precision="fp8")
    with pytest.raises(ValueError, match="only offered on CUDA"):
        extract_features(_Taps, _Images(2), ["a"], tmp_path, bf16, torch.device("cpu"), progress=False)
    extract_features(_Taps, _Images(2), ["a"], tmp_path, KEY, torch.device("cpu"), progress=False)
    meta = KEY.path(tmp_path, "a").with_suffix(".json").read_text()
    assert '"precision": "fp32"' in meta


def test_key_components_must_be_plain_names() -> None:
    with pytest.raises(ValueError, match="file-name component"):
        FeatureKey("f" * 64, "voc/07", "train", "id")


def test_temporary_files_of_a_killed_run_are_swept(tmp_path: Path) -> None:
    folder = KEY.path(tmp_path, "a").parent
    folder.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid no live process owns
    leftover = folder / tmp_name("a__id8.npy").replace(f".{os.getpid()}.", f".{proc.pid}.")
    leftover.write_bytes(b"half an array")
    extract_features(_Taps(), _Images(4), ["a"], tmp_path, KEY, torch.device("cpu"), progress=False)
    assert not leftover.exists() and not list(tmp_path.rglob("*.tmp"))


def test_cache_holds_exactly_what_the_plain_channels_last_loop_computes(tmp_path: Path) -> None:
    """The cache path (batch_features + memmap) adds nothing to the numbers: bit-equal to the model's
    own output in eval + inference mode with the model and batches in channels_last."""
    torch.manual_seed(0)
    taps = FeatureTaps(build_resnet50())
    data = _Images(5)
    names = ["feature1", "feature3", "avgpool"]
    out = extract_features(taps, data, names, tmp_path, KEY, torch.device("cpu"), batch_size=2,
                           progress=False)
    model = FeatureTaps(build_resnet50()).eval().to(memory_format=torch.channels_last)
    model.load_state_dict(taps.state_dict())
    with torch.inference_mode():
        want = [model(data.images[i:i + 2].contiguous(memory_format=torch.channels_last),
                      taps=tuple(names)) for i in range(0, 5, 2)]
    for tap in names:
        np.testing.assert_array_equal(out[tap], torch.cat([w[tap] for w in want]).flatten(1).numpy())


class _FailsOnRank1(_Taps):
    def forward(self, x: torch.Tensor, taps: Sequence[str]) -> dict[str, torch.Tensor]:
        if int(os.environ["RANK"]) == 1:
            raise RuntimeError("rank one's batch broke")
        return super().forward(x, taps)


def _sharded_rank(root: Path) -> None:
    """One torchrun rank of the 3-process gloo test (this file run as a script): three extractions;
    what the rank saw goes to `root/rank<r>.json`."""
    info = init_distributed(torch.device("cpu"))
    seen: dict[str, object] = {}
    for name, count in (("five", 5), ("three", 3)):  # 3 batches for 3 ranks; 2 batches (rank 2 idle)
        model = _Taps()
        out = extract_features(lambda m=model: m, _Images(count), ["a", "b"], root / name, KEY,
                               torch.device("cpu"), batch_size=2, progress=False, dist=info)
        seen[name] = {"calls": model.calls, "returned": out is not None}
    try:
        extract_features(_FailsOnRank1, _Images(6), ["a"], root / "broken", KEY, torch.device("cpu"),
                         batch_size=2, progress=False, dist=info)
        seen["broken"] = "no error"
    except RuntimeError as err:
        seen["broken"] = str(err)
    (root / f"rank{info.rank}.json").write_text(json.dumps(seen))
    shutdown(info)


def test_sharded_extraction_over_three_ranks_equals_one_process(
    tmp_path: Path, torchrun_ranks: Callable[..., list[dict]],
) -> None:
    seen = torchrun_ranks(Path(__file__), 3, tmp_path)
    for name, count, calls in (("five", 5, [1, 1, 1]), ("three", 3, [1, 1, 0])):
        assert [s[name]["calls"] for s in seen] == calls  # each rank ran only its own batches
        assert [s[name]["returned"] for s in seen] == [True, False, False]  # arrays on rank 0 only
        solo = extract_features(_Taps, _Images(count), ["a", "b"], tmp_path / "solo" / name, KEY,
                                torch.device("cpu"), batch_size=2, progress=False)
        for tap in ("a", "b"):
            np.testing.assert_array_equal(np.load(KEY.path(tmp_path / name, tap)), solo[tap])
            meta = json.loads(KEY.path(tmp_path / name, tap).with_suffix(".json").read_text())
            assert sum(meta["rows_per_rank"]) == count and len(meta["rows_per_rank"]) == 3
    # one rank's failure reaches every rank (none waits forever in the gather) and leaves no file
    assert all("rank 1" in s["broken"] and "rank one's batch broke" in s["broken"] for s in seen)
    assert not any(p.is_file() for p in (tmp_path / "broken").rglob("*"))


if __name__ == "__main__":  # a rank of test_sharded_extraction_over_three_ranks_equals_one_process
    _sharded_rank(Path(sys.argv[1]))
