"""Reading files without running their code: the mmengine allowlist, metadata stand-ins, true reasons."""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from adapters import CheckpointError, load_checkpoint
from adapters.load import detect_checkpoint
from adapters.safe_load import legacy_pickle_globals, load_mmengine_checkpoint, mmengine_safe_globals

mmengine_logging = pytest.importorskip("mmengine.logging")


def canonical_state() -> dict[str, torch.Tensor]:
    from adapters import canonical_shapes

    return {
        k: torch.tensor(i) if k.endswith("num_batches_tracked") else torch.full((), float(i)).expand(s)
        for i, (k, s) in enumerate(canonical_shapes(False).items())
    }


def runner_checkpoint(with_optimizer: bool) -> dict[str, object]:
    """What mmengine's Runner.save_checkpoint writes (mmengine/runner/runner.py): meta, state_dict,
    message_hub (MessageHub.state_dict() with real HistoryBuffers), optimizer, param_schedulers; MMSelfSup's
    tools/model_converters/publish_model.py deletes only 'optimizer'."""
    hub = mmengine_logging.MessageHub.get_instance(f"dcbench-test-{with_optimizer}")
    hub.update_scalar("train/loss", 0.5)
    hub.update_scalar("train/loss", np.float64(0.25))
    hub.update_scalar("train/lr", torch.tensor(0.1))
    hub.update_info("iter", 10)
    hub.update_info("epoch", 2)
    state = {f"backbone.{k}": v for k, v in canonical_state().items()}
    state |= {"head.fc_cls.weight": torch.zeros(10, 2048), "loss_weight": torch.full((10,), 0.1)}
    ckpt: dict[str, object] = {
        "meta": {
            "epoch": 2,
            "iter": 10,
            "cfg": "model = dict(type='DeepCluster')",
            "seed": 0,
            "experiment_name": "deepcluster",
            "time": "20240101_000000",
            "mmengine_version": "0.10.7",
            "dataset_meta": {"classes": ("a", "b")},
        },
        "state_dict": state,
        "message_hub": hub.state_dict(),
        "param_schedulers": [{"milestones": {400: 1}, "gamma": 0.1, "base_lrs": [0.3], "last_step": 10}],
    }
    if with_optimizer:
        ckpt["optimizer"] = {"state": {}, "param_groups": [{"lr": 0.3, "momentum": 0.9, "params": [0]}]}
    return ckpt


@pytest.mark.parametrize("with_optimizer", [True, False], ids=["runner", "publish_model"])
def test_mmengine_runner_checkpoint_loads_through_the_allowlist(tmp_path: Path, with_optimizer: bool) -> None:
    path = tmp_path / "epoch_2.pth"
    torch.save(runner_checkpoint(with_optimizer), path)
    assert {"mmengine.logging.history_buffer.HistoryBuffer", "builtins.getattr"} <= set(
        torch.serialization.get_unsafe_globals_in_checkpoint(path)
    )
    bb = load_checkpoint(path)
    assert bb.source_format == "mmselfsup"
    assert all(torch.equal(bb.state_dict[k], v) for k, v in canonical_state().items())


def test_load_mmengine_checkpoint_gives_a_resumable_message_hub(tmp_path: Path) -> None:
    path = tmp_path / "epoch_2.pth"
    torch.save(runner_checkpoint(True), path)
    ckpt = load_mmengine_checkpoint(path, map_location="cpu")
    assert isinstance(ckpt, dict)
    hub = mmengine_logging.MessageHub.get_instance("dcbench-resumed")
    hub.load_state_dict(ckpt["message_hub"])
    loss = hub.get_scalar("train/loss")
    assert isinstance(loss, mmengine_logging.HistoryBuffer)
    assert loss.current() == 0.25 and loss.mean() == pytest.approx(0.375)
    assert hub.get_info("epoch") == 2


class NotAllowed:
    """Any class outside the allowlist."""


class GetattrOther:
    """Pickles as getattr(HistoryBuffer, 'update'): allowlisted names, but not what getattr may return."""

    def __reduce__(self) -> tuple[object, ...]:
        return (getattr, (mmengine_logging.HistoryBuffer, "update"))


def test_crafted_files_outside_the_allowlist_are_refused_with_the_true_reason(tmp_path: Path) -> None:
    ckpt = runner_checkpoint(False)
    extra = tmp_path / "extra.pth"
    torch.save(ckpt | {"message_hub": {"log_scalars": {}, "extra": NotAllowed()}}, extra)
    for read in (load_checkpoint, load_mmengine_checkpoint):
        with pytest.raises(
            CheckpointError,
            match=r"pickles Python object\(s\) .*NotAllowed.* never uses "
            "weights_only=False",
        ):
            read(extra)
    sneaky = tmp_path / "getattr.pth"
    torch.save(ckpt | {"message_hub": {"log_scalars": {}, "hook": GetattrOther()}}, sneaky)
    with pytest.raises(CheckpointError, match=r"getattr\(.*HistoryBuffer.*'update'\) is not allowed"):
        load_checkpoint(sneaky)


def test_allowlist_getattr_stand_in_returns_only_the_statistics_methods() -> None:
    stand_in = next(
        e[0] for e in mmengine_safe_globals() if isinstance(e, tuple) and e[1] == "builtins.getattr"
    )
    history = mmengine_logging.HistoryBuffer
    assert [stand_in(history, m) for m in ("min", "max", "current", "mean")] == [
        history.min,
        history.max,
        history.current,
        history.mean,
    ]
    for obj, name in ((history, "__init__"), (os, "system"), (history, "update")):
        with pytest.raises(pickle.UnpicklingError, match="is not allowed"):
            stand_in(obj, name)


class Evil:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("echo should-never-run",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_malicious_legacy_pickle_is_refused_naming_what_it_wanted(tmp_path: Path, protocol: int) -> None:
    """Issue 18: the legacy (non-zip) case used to read 'not a readable torch checkpoint'."""
    path = tmp_path / "evil.pth"
    with path.open("wb") as fh:
        pickle.dump({"state_dict": {"conv1.weight": Evil()}}, fh, protocol=protocol)
    assert legacy_pickle_globals(path) == ["posix.system"]
    with pytest.raises(CheckpointError, match=r"pickles Python object\(s\) posix.system that"):
        load_checkpoint(path)


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, cls_name: str, base: type) -> type:
    """A class pickled as `name.cls_name`, as the real library's would be; importable only while saving."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        dotted = ".".join(parts[:i])
        if dotted not in sys.modules:
            monkeypatch.setitem(sys.modules, dotted, types.ModuleType(dotted))
    cls = type(cls_name, (base,), {"__module__": name})
    cls.__qualname__ = cls_name
    setattr(sys.modules[name], cls_name, cls)
    return cls


def test_lightning_metadata_is_read_as_inert_stand_ins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Lightning checkpoint whose hyper_parameters hold an omegaconf DictConfig inside Lightning's
    AttributeDict (LightningModule.save_hyperparameters(cfg)); neither library is installed here, and
    none of its code runs."""
    with monkeypatch.context() as saving:
        config_cls = fake_module(saving, "omegaconf.dictconfig", "DictConfig", object)
        attr_cls = fake_module(saving, "lightning_fabric.utilities.data", "AttributeDict", dict)
        cfg = config_cls()
        cfg.__dict__.update({"_content": {"method": "byol"}, "_metadata": None})
        hparams = attr_cls(cfg=cfg)
        state = {f"backbone.{k}": v for k, v in canonical_state().items()}
        ckpt = {
            "epoch": 1,
            "global_step": 10,
            "pytorch-lightning_version": "2.1.3",
            "state_dict": state,
            "hparams_name": "kwargs",
            "hyper_parameters": hparams,
        }
        path = tmp_path / "lightning.ckpt"
        torch.save(ckpt, path)
        poisoned = tmp_path / "poisoned.ckpt"
        torch.save(ckpt | {"state_dict": state | {"backbone.bn1.weight": config_cls()}}, poisoned)
    assert "omegaconf.dictconfig" not in sys.modules
    found = detect_checkpoint(path)
    assert (
        "inert stand-ins, none of its code run: lightning_fabric.utilities.data.AttributeDict, "
        "omegaconf.dictconfig.DictConfig" in found.reason
    )
    assert load_checkpoint(path).source_format == "mmselfsup"
    stand_in = r"\(metadata stand-in for omegaconf.dictconfig.DictConfig\)"
    with pytest.raises(CheckpointError, match=rf"non-tensor value\(s\) {stand_in} for 1 key\(s\) \['bn1.w"):
        load_checkpoint(poisoned)


def test_unreadable_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(path)


def test_without_mmengine_the_message_hub_is_read_inertly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapters.safe_load as safe_load

    path = tmp_path / "epoch_2.pth"
    torch.save(runner_checkpoint(True), path)
    monkeypatch.setattr(safe_load, "_mmengine_available", lambda: False)
    loaded = safe_load.read_checkpoint_file(path)
    assert isinstance(loaded.obj, dict)
    assert (
        safe_load.skipped_global(loaded.obj["message_hub"]["log_scalars"]["train/loss"])
        == safe_load.HISTORY_BUFFER
    )
    assert load_checkpoint(path).source_format == "mmselfsup"
