"""Which format a loaded checkpoint is in, and why; for a refused one, what was tried and how close.

The loaded object is read as dotted keys (`flatten`), so nested torch dicts and flat safetensors
files are the same layouts.  Each format of `adapters.formats.FORMATS` (or only the one named by
``--ckpt-format``) is tried on the first of its containers that the file has: its rules must account
for every key there and give exactly the canonical ResNet-50 keys and shapes.  The first format in
table order that fits is chosen; the `Detection` says which container, network and rules made it
fit, and which other formats fit too.  When none fits, the error names every format tried and, for
the closest one (most canonical keys matched), its first unmatched, missing and mis-shaped keys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .errors import CheckpointError
from .formats import FORMATS, PRETRAIN_FORMAT, Format
from .keys import KeyMap, KeyReport, canonical_shapes, compare_shapes, listed, map_keys

TWICE = "<this dotted key appears twice in the file: nested and dotted>"


def flatten(obj: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested dicts with string keys as dotted keys; any other value (tensor, list, ...) is a leaf.

    A dotted key that a file spells twice (``{"a.b": x, "a": {"b": y}}``) holds `TWICE`, which
    `convert_state` refuses if the weights need it.
    """
    flat: dict[str, object] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and all(isinstance(k, str) for k in value):
            inner = flatten(value, name + ".")
        else:
            inner = {name: value}
        for k, v in inner.items():
            flat[k] = TWICE if k in flat else v
    return flat


@dataclass(frozen=True)
class Candidate:
    fmt: Format
    network: str
    container: str
    state: Mapping[str, object]
    keymap: KeyMap
    report: KeyReport

    @property
    def fits(self) -> bool:
        return not self.keymap.unmatched and not self.keymap.collisions and self.report.ok

    @property
    def matched(self) -> int:
        """Canonical keys present with the right shape."""
        return len(canonical_shapes(False)) - len(self.report.missing) - len(self.report.mismatched)

    def where(self) -> str:
        return f"under {self.container!r}" if self.container else "at the top level"

    def label(self) -> str:
        network = "" if len(self.fmt.networks) == 1 else f", network {self.network!r}"
        return f"{self.fmt.name!r} ({self.where()}{network})"


@dataclass(frozen=True)
class Detection:
    format: str
    network: str
    container: str
    state: Mapping[str, object]
    reason: str


def _container_state(flat: Mapping[str, object], container: str) -> dict[str, object] | None:
    if not container:
        return dict(flat)
    start = container + "."
    state = {k[len(start):]: v for k, v in flat.items() if k.startswith(start)}
    return state or None


def _shapes(
    mapped: Mapping[str, object], expected: Mapping[str, tuple[int, ...]]
) -> dict[str, tuple[int, ...]]:
    """Shapes of the mapped tensors; a non-tensor counts as fitting here (convert_state names it)."""
    return {k: tuple(v.shape) if isinstance(v, torch.Tensor) else expected.get(k, ())
            for k, v in mapped.items()}


def _candidate(fmt: Format, network: str, flat: Mapping[str, object]) -> Candidate | None:
    for container in fmt.containers:
        state = _container_state(flat, container)
        if state is None:
            continue
        keymap = map_keys(state, fmt.networks[network])
        mapped = {dst: state[src] for src, dst in keymap.mapped.items()}
        conv1 = mapped.get("conv1.weight")
        sobel = isinstance(conv1, torch.Tensor) and conv1.dim() == 4 and conv1.shape[1] == 2
        expected = canonical_shapes(sobel)
        report = compare_shapes(expected, _shapes(mapped, expected))
        return Candidate(fmt, network, container, state, keymap, report)
    return None


def _formats(fmt: str | None, network: str | None, pretrain: bool) -> list[tuple[Format, str]]:
    if fmt is not None:
        if fmt not in FORMATS:
            raise CheckpointError(f"unknown --ckpt-format {fmt!r}; known: {sorted(FORMATS)}")
        chosen = FORMATS[fmt]
        if network is not None and network not in chosen.networks:
            raise CheckpointError(f"format {fmt!r} has no network {network!r} (--ckpt-key); it holds "
                                  f"{sorted(chosen.networks)}")
        return [(chosen, network or chosen.default_network)]
    names = [PRETRAIN_FORMAT] if pretrain else [n for n in FORMATS if n != PRETRAIN_FORMAT]
    pairs = [(FORMATS[n], network or FORMATS[n].default_network) for n in names]
    pairs = [(f, n) for f, n in pairs if n in f.networks]
    if not pairs:
        having = {name: sorted(f.networks) for name, f in FORMATS.items() if len(f.networks) > 1}
        raise CheckpointError(f"no format holds a network {network!r} (--ckpt-key); formats with a "
                              f"choice of network: {having}")
    return pairs


def _pretrain_marker(obj: Mapping[str, object]) -> bool:
    if "format" not in obj:
        return False
    if obj["format"] != PRETRAIN_FORMAT:
        raise CheckpointError(f"unsupported checkpoint format {obj['format']!r}; known: {PRETRAIN_FORMAT!r}")
    return True


def detect(
    obj: object, fmt: str | None = None, network: str | None = None, skipped: Sequence[str] = ()
) -> Detection:
    """The format of loaded checkpoint `obj` and the state dict to convert, with the reason."""
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(f"the checkpoint holds a {type(obj).__name__}, expected a dict")
    flat = flatten(obj)
    tried = [c for f, n in _formats(fmt, network, _pretrain_marker(obj)) if (c := _candidate(f, n, flat))]
    fits = [c for c in tried if c.fits]
    if fmt is not None and tried:
        return _detection(tried[0], [], skipped, explicit=True)
    if fmt is not None:
        raise CheckpointError(f"--ckpt-format {fmt!r}: the file has none of its containers "
                              f"{[c or '<top level>' for c in FORMATS[fmt].containers]}; top-level keys: "
                              f"{listed([str(k) for k in obj])}")
    if fits:
        return _detection(fits[0], fits[1:], skipped, explicit=False)
    raise CheckpointError(_refusal(obj, tried))


def _detection(
    chosen: Candidate, others: Sequence[Candidate], skipped: Sequence[str], explicit: bool
) -> Detection:
    rules = Counter(rule.name for rule in chosen.keymap.dropped.values())
    dropped = ", ".join(f"{name} ({count})" for name, count in rules.items()) or "none"
    how = "chosen by --ckpt-format" if explicit else "detected"
    parts = [
        f"format {chosen.label()} {how}: {len(chosen.keymap.mapped)} tensors mapped onto the ResNet-50 "
        f"names, {len(chosen.keymap.dropped)} keys dropped by named rules [{dropped}]",
        f"source: {chosen.fmt.source}",
    ]
    if others:
        parts.append(f"also fits {', '.join(c.label() for c in others)} (same key set; pass --ckpt-format "
                     "to record another name)")
    if skipped:
        parts.append(f"metadata read as inert stand-ins, none of its code run: {', '.join(skipped)}")
    return Detection(chosen.fmt.name, chosen.network, chosen.container, chosen.state, "; ".join(parts))


def _refusal(obj: Mapping[str, object], tried: Sequence[Candidate]) -> str:
    top = [str(k) for k in obj]
    not_dicts = [f"{k!r} is a {type(obj[k]).__name__}, expected a dict of named tensors" for k in top
                 if any(k == f.containers[0].split(".")[0] for f in FORMATS.values())
                 and not isinstance(obj[k], Mapping)]
    head = "not a recognised ResNet-50 checkpoint"
    tail = f"; top-level keys: {listed(top)}" + "".join(f"; {d}" for d in not_dicts)
    if not tried:
        return f"{head}: no known layout's container is present{tail}"
    closest = max(tried, key=lambda c: (c.matched, bool(c.container), -len(c.keymap.unmatched)))
    details = [f"{closest.matched} of {len(canonical_shapes(False))} canonical keys matched"]
    if closest.keymap.unmatched:
        details.append(f"unmatched keys {listed(closest.keymap.unmatched)}")
    if closest.keymap.collisions:
        details.append(f"several keys onto one name {listed(list(closest.keymap.collisions))}")
    if not closest.report.ok:
        details.append(closest.report.describe())
    return (f"{head}: tried {', '.join(c.label() for c in tried)}; closest {closest.label()}: "
            f"{'; '.join(details)}{tail}")
