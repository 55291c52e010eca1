"""Read a ResNet-50 checkpoint of any supported format into the canonical `Backbone`.

Files are read with `torch.load(path, map_location="cpu", weights_only=True)` only.  The top-level
layout decides the format; each format has a fixed list of named key rules (`RULES`) and the pure
function `map_keys` sends every source key through the first rule that matches it: a rule either
renames a key prefix onto the torchvision ResNet-50 names or drops the key, by name.  A key that no
rule accounts for, two keys mapped onto one name, a missing or unexpected canonical key, or a wrong
shape is an error that names the keys.

Formats (`Backbone.source_format`):
- ``deepcluster-bench/pretrain/v1``: this project's pretrain checkpoints (docs/ARCHITECTURE.md);
  the weights are under ``"backbone"`` with torchvision names and no ``fc``.
- ``torchvision``: a plain torchvision ResNet-50 state dict, with or without ``fc.*``.
- ``mmselfsup``: MMSelfSup 0.x / 1.x training checkpoints, ``{"state_dict": {"backbone.*", "neck.*",
  "head.*", ...}}``.  For DeepCluster the rest is: 1.x's persistent ``loss_weight`` buffer
  (mmselfsup/models/algorithms/deepcluster.py), ``head.criterion.weight`` in 0.x after re-weighting,
  and the Sobel variant's fixed filter -- ``sobel_layer.sobel.{0,1}.{weight,bias}`` in 0.x
  (``DeepCluster(with_sobel=True)``) and ``backbone.sobel_layer.sobel.*`` in 1.x (``ResNetSobel``).
- ``mmselfsup-backbone``: ``{"state_dict": <torchvision names>}``, what MMSelfSup's
  tools/model_converters/extract_backbone_weights.py writes (a Sobel one keeps ``sobel_layer.*``).
- ``moco``: MoCo v1/v2 checkpoints, ``{"state_dict": {"module.encoder_q.*", "module.encoder_k.*",
  "module.queue", "module.queue_ptr"}}``; the query encoder without its ``fc`` is kept.

The Sobel layers in MMSelfSup files are dropped only after checking that they hold exactly the fixed
grayscale + Sobel filter that `dcbench.backbone.Sobel` applies in front of a Sobel backbone.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dcbench.backbone import Backbone, Sobel, build_resnet50
from dcbench.fileio import sha256_file

PRETRAIN_FORMAT = "deepcluster-bench/pretrain/v1"
TRUNK_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")
MAX_LISTED = 30


class CheckpointError(ValueError):
    """The file is not a checkpoint we can read, or its keys do not map onto ResNet-50."""


class SobelExportError(ValueError):
    """A Sobel backbone (2-channel conv1) cannot be written in a 3-channel RGB format."""


@dataclass(frozen=True)
class Rule:
    """Send keys starting with `source` (or equal to it, when `exact`) to `target` + rest; drop if None."""

    name: str
    source: str
    target: str | None
    exact: bool = False
    fixed_sobel: bool = False  # dropped keys must hold the fixed grayscale+Sobel filter

    def matches(self, key: str) -> bool:
        return key == self.source if self.exact else key.startswith(self.source)

    def apply(self, key: str) -> str | None:
        return None if self.target is None else self.target + key[len(self.source):]


def _trunk(source_prefix: str, name: str) -> tuple[Rule, ...]:
    return tuple(Rule(name, source_prefix + p, p) for p in TRUNK_PREFIXES)


def _drop(name: str, source: str, exact: bool = False, fixed_sobel: bool = False) -> Rule:
    return Rule(name, source, None, exact=exact, fixed_sobel=fixed_sobel)


RULES: Mapping[str, tuple[Rule, ...]] = {
    PRETRAIN_FORMAT: _trunk("", "resnet-50 trunk"),
    "torchvision": (*_trunk("", "resnet-50 trunk"), _drop("torchvision classifier", "fc.")),
    "mmselfsup": (
        _drop("1.x ResNetSobel fixed sobel layer", "backbone.sobel_layer.", fixed_sobel=True),
        *_trunk("backbone.", "mmselfsup backbone"),
        _drop("mmselfsup neck", "neck."),
        _drop("mmselfsup head (incl. 0.x head.criterion.weight)", "head."),
        _drop("1.x DeepCluster loss_weight buffer", "loss_weight", exact=True),
        _drop("0.x DeepCluster(with_sobel) fixed sobel layer", "sobel_layer.", fixed_sobel=True),
        _drop("1.x data_preprocessor buffers", "data_preprocessor."),
    ),
    "mmselfsup-backbone": (
        *_trunk("", "resnet-50 trunk"),
        _drop("torchvision-style classifier", "fc."),
        _drop("ResNetSobel fixed sobel layer", "sobel_layer.", fixed_sobel=True),
    ),
    "moco": (
        _drop("moco query projection fc", "module.encoder_q.fc."),
        *_trunk("module.encoder_q.", "moco query encoder"),
        _drop("moco key encoder", "module.encoder_k."),
        _drop("moco queue", "module.queue", exact=True),
        _drop("moco queue pointer", "module.queue_ptr", exact=True),
    ),
}


@dataclass(frozen=True)
class KeyMap:
    """Where each source key goes: `mapped` (source -> canonical), `dropped` (source -> rule)."""

    mapped: Mapping[str, str]
    dropped: Mapping[str, Rule]
    unmatched: tuple[str, ...]
    collisions: Mapping[str, tuple[str, ...]]  # canonical key -> the sources sent to it


def map_keys(keys: Iterable[str], rules: Sequence[Rule]) -> KeyMap:
    """Pure key mapping: every key is mapped, dropped by a named rule, or reported unmatched."""
    mapped: dict[str, str] = {}
    dropped: dict[str, Rule] = {}
    unmatched: list[str] = []
    for key in keys:
        rule = next((r for r in rules if r.matches(key)), None)
        if rule is None:
            unmatched.append(key)
        elif rule.target is None:
            dropped[key] = rule
        else:
            mapped[key] = str(rule.apply(key))
    sources: dict[str, list[str]] = {}
    for src, dst in mapped.items():
        sources.setdefault(dst, []).append(src)
    collisions = {dst: tuple(srcs) for dst, srcs in sources.items() if len(srcs) > 1}
    return KeyMap(mapped, dropped, tuple(unmatched), collisions)


def listed(keys: Sequence[str]) -> str:
    """`keys` for an error message: all of them up to MAX_LISTED, then a count."""
    shown = ", ".join(repr(k) for k in keys[:MAX_LISTED])
    more = len(keys) - MAX_LISTED
    return f"[{shown}{f', ... and {more} more' if more > 0 else ''}]"


@dataclass(frozen=True)
class KeyReport:
    """Differences between an expected and an actual {key: shape}."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]]  # key -> (expected, actual)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"missing {len(self.missing)} key(s) {listed(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected {len(self.unexpected)} key(s) {listed(self.unexpected)}")
        if self.mismatched:
            shapes = [f"{k}: expected {list(e)}, got {list(a)}" for k, (e, a) in self.mismatched.items()]
            parts.append(f"wrong shape for {len(shapes)} key(s) {listed(shapes)}")
        return "; ".join(parts)


def compare_shapes(
    expected: Mapping[str, Sequence[int]], actual: Mapping[str, Sequence[int]]
) -> KeyReport:
    common = [k for k in expected if k in actual]
    mismatched = {
        k: (tuple(expected[k]), tuple(actual[k])) for k in common if tuple(expected[k]) != tuple(actual[k])
    }
    return KeyReport(
        missing=tuple(k for k in expected if k not in actual),
        unexpected=tuple(k for k in actual if k not in expected),
        mismatched=mismatched,
    )


def canonical_shapes(sobel: bool) -> dict[str, tuple[int, ...]]:
    """{key: shape} of the canonical backbone (torchvision ResNet-50 without fc): 318 entries."""
    with torch.device("meta"):
        model = build_resnet50(sobel=sobel)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def read_checkpoint_file(path: Path) -> object:
    """`torch.load(weights_only=True)` with an error that says what is wrong with the file."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes), not a checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        name = found.group(1) if found else ", ".join(refused_globals(path)[:5])
        if name:
            raise CheckpointError(
                f"{path} pickles a Python object ({name}) that torch.load(weights_only=True) "
                "refuses; checkpoints must hold only tensors, numbers, strings, lists and dicts, and this "
                "loader never uses weights_only=False"
            ) from exc
        raise _unreadable(path, exc) from exc
    except Exception as exc:
        raise _unreadable(path, exc) from exc


# ---- why a legacy (non-zip) or raw pickle was refused: read its opcodes, never execute them ----
MAX_PICKLES = 4  # legacy torch.save: magic number, protocol, sys info, then the object


def _pickle_globals(fh: object) -> list[str]:
    """'module.name' of every GLOBAL / STACK_GLOBAL of the pickles at the start of `fh` (not run)."""
    names: list[str] = []
    for _ in range(MAX_PICKLES):
        strings: list[object] = []
        memo: dict[int, object] = {}
        try:
            for op, arg, _pos in pickletools.genops(fh):
                if op.name == "GLOBAL":
                    names.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
                elif op.name == "MEMOIZE" and strings:
                    memo[len(memo)] = strings[-1]
                elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                    memo[int(arg)] = strings[-1]
                elif op.name in ("BINGET", "LONG_BINGET", "GET"):
                    strings.append(memo.get(int(arg)))
                elif "UNICODE" in op.name or op.name == "STRING":
                    strings.append(arg)
        except (ValueError, EOFError, pickle.UnpicklingError):
            break
    return names


def refused_globals(path: Path) -> list[str]:
    """The Python objects a non-zip pickle file names that torch's weights-only loader would refuse."""
    if zipfile.is_zipfile(path):
        return []
    allowed: set[str] = set()
    with contextlib.suppress(ImportError, AttributeError):  # torch's own allowlist, where it has one
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = set(_get_allowed_globals())
    with open(path, "rb") as fh:
        found = _pickle_globals(fh)
    return [name for name in dict.fromkeys(found) if name not in allowed]


def _unreadable(path: Path, exc: Exception) -> CheckpointError:
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    return CheckpointError(
        f"{path} is not a readable torch checkpoint (corrupt, truncated or not a torch.save file): "
        f"{type(exc).__name__}: {first}"
    )


def _state_mapping(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise CheckpointError(f"{where} is a {type(value).__name__}, expected a dict of named tensors")
    return value


def detect_format(obj: object) -> tuple[str, Mapping[str, object]]:
    """(format name, the state dict to map) for a loaded checkpoint object."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"the checkpoint holds a {type(obj).__name__}, expected a dict")
    if "format" in obj:
        if obj["format"] != PRETRAIN_FORMAT:
            raise CheckpointError(
                f"unsupported checkpoint format {obj['format']!r}; known: {PRETRAIN_FORMAT!r}"
            )
        return PRETRAIN_FORMAT, _state_mapping(obj.get("backbone"), "'backbone'")
    if "state_dict" in obj:
        state = _state_mapping(obj["state_dict"], "'state_dict'")
        if any(k.startswith("module.encoder_q.") for k in state):
            return "moco", state
        if any(k.startswith("backbone.") for k in state):
            return "mmselfsup", state
        if "conv1.weight" in state:
            return "mmselfsup-backbone", state
        raise CheckpointError(
            "'state_dict' holds no ResNet-50 weights in a known layout (expected keys like "
            f"'backbone.conv1.weight', 'module.encoder_q.conv1.weight' or 'conv1.weight'); "
            f"its keys: {listed(list(state))}"
        )
    if "conv1.weight" in obj:
        return "torchvision", _state_mapping(obj, "the checkpoint")
    raise CheckpointError(
        "not a recognised ResNet-50 checkpoint: expected a deepcluster-bench pretrain checkpoint "
        "('format' key), a dict with 'state_dict' (MMSelfSup / MoCo) or a torchvision state dict "
        f"('conv1.weight', ...); top-level keys: {listed([str(k) for k in obj])}"
    )


def _sobel_flag(state: Mapping[str, torch.Tensor]) -> bool:
    shape = tuple(state["conv1.weight"].shape)
    if len(shape) != 4 or shape[1] not in (2, 3):
        raise CheckpointError(
            f"conv1.weight has shape {list(shape)}; expected [64, 3, 7, 7] or [64, 2, 7, 7] (Sobel)"
        )
    return shape[1] == 2


def _fixed_sobel_values() -> dict[str, torch.Tensor]:
    """MMSelfSup's Sobel layer (`sobel.0` grayscale 1x1 conv, `sobel.1` Sobel 3x3 conv) as dcbench's."""
    sobel = Sobel()
    return {
        "sobel.0.weight": sobel.gray, "sobel.0.bias": torch.zeros(1),
        "sobel.1.weight": sobel.sobel, "sobel.1.bias": torch.zeros(2),
    }


def _check_fixed_sobel(state: Mapping[str, object], keymap: KeyMap, sobel: bool) -> None:
    by_rule: dict[Rule, dict[str, object]] = {}
    for key, rule in keymap.dropped.items():
        if rule.fixed_sobel:
            by_rule.setdefault(rule, {})[key[len(rule.source):]] = state[key]
    expected = _fixed_sobel_values()
    for rule, found in by_rule.items():
        if not sobel:
            raise CheckpointError(f"the checkpoint has a Sobel layer ({rule.source}*) but a 3-channel conv1")
        same = set(found) == set(expected) and all(
            isinstance(v, torch.Tensor) and v.shape == expected[k].shape
            and torch.allclose(v.float(), expected[k], atol=1e-6)
            for k, v in found.items()
        )
        if not same:
            raise CheckpointError(
                f"the checkpoint's Sobel layer {rule.source}* is not the fixed grayscale+Sobel filter "
                f"(dcbench.backbone.Sobel) that replaces it; found keys {sorted(found)}"
            )


def convert_state(state: Mapping[str, object], fmt: str) -> tuple[dict[str, torch.Tensor], bool]:
    """Map a source state dict of format `fmt` onto the canonical keys; returns (state, sobel)."""
    keymap = map_keys(state, RULES[fmt])
    if keymap.unmatched:
        raise CheckpointError(
            f"{fmt} checkpoint has key(s) that no rule accounts for: {listed(keymap.unmatched)}"
        )
    if keymap.collisions:
        pairs = [f"{dst} <- {list(srcs)}" for dst, srcs in keymap.collisions.items()]
        raise CheckpointError(f"{fmt} checkpoint maps several keys onto one name: {listed(pairs)}")
    out = {dst: state[src] for src, dst in keymap.mapped.items()}
    not_tensors = [k for k, v in out.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{fmt} checkpoint has non-tensor value(s) for {listed(not_tensors)}")
    tensors: dict[str, torch.Tensor] = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
    if "conv1.weight" not in tensors:
        raise CheckpointError(f"{fmt} checkpoint has no conv1.weight; mapped keys: {listed(list(tensors))}")
    sobel = _sobel_flag(tensors)
    report = compare_shapes(canonical_shapes(sobel), {k: tuple(v.shape) for k, v in tensors.items()})
    if not report.ok:
        raise CheckpointError(f"{fmt} checkpoint does not fit ResNet-50 (sobel={sobel}): {report.describe()}")
    _check_dtypes(tensors)
    _check_fixed_sobel(state, keymap, sobel)
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, sobel


def _check_dtypes(state: Mapping[str, torch.Tensor]) -> None:
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    wrong = [k for k in counters if state[k].is_floating_point()]
    wrong += [k for k in state if k not in counters and not state[k].is_floating_point()]
    if wrong:
        raise CheckpointError(f"wrong dtype (float weights, integer num_batches_tracked) for {listed(wrong)}")


def _pretrain_config(obj: Mapping[str, object], sobel: bool) -> str:
    name, flag = obj.get("config_name"), obj.get("sobel")
    if not isinstance(name, str):
        raise CheckpointError(f"pretrain checkpoint 'config_name' is {name!r}, expected a string")
    if flag is not sobel:
        raise CheckpointError(f"pretrain checkpoint says sobel={flag!r} but conv1 implies sobel={sobel}")
    return name


def load_checkpoint(path: str | os.PathLike[str]) -> Backbone:
    """Read `path` (weights_only=True) in any supported format into the canonical `Backbone`."""
    path = Path(path)
    obj = read_checkpoint_file(path)
    try:
        fmt, state = detect_format(obj)
        canonical, sobel = convert_state(state, fmt)
        is_pretrain = fmt == PRETRAIN_FORMAT and isinstance(obj, Mapping)
        config = _pretrain_config(obj, sobel) if is_pretrain else None
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    return Backbone(
        state_dict=canonical, sobel=sobel, sha256=sha256_file(path), source_format=fmt, pretrain_config=config
    )


def require_rgb(backbone: Backbone, target: str, why: str) -> None:
    """Raise `SobelExportError` for a Sobel backbone: `target` has only a 3-channel RGB stem."""
    if backbone.sobel:
        raise SobelExportError(
            f"cannot export a Sobel backbone (conv1 takes 2 Sobel channels) to {target}: {why}"
        )
