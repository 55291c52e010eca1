"""Key rules and key accounting: every source key is mapped or dropped by a named rule, or reported.

`map_keys` is pure: each key goes through the first `Rule` that matches it; a rule renames a key
prefix onto the torchvision ResNet-50 names or drops the key, by name.  `compare_shapes` lists the
missing, unexpected and mis-shaped keys together (never one kind hiding another).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from dcbench.backbone import build_resnet50

TRUNK_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")
MAX_LISTED = 8


@dataclass(frozen=True)
class Rule:
    """Send keys starting with `source` (or equal to it, when `exact`) to `target` + rest; drop if None.

    `sobel`: the dropped keys are an MMSelfSup Sobel layer that must hold the fixed filter
    (``"fixed"``) or may hold the filter MMSelfSup 1.x's `init_weights` left (``"fixed-or-1.x"``).
    """

    name: str
    source: str
    target: str | None
    exact: bool = False
    sobel: str | None = None

    def matches(self, key: str) -> bool:
        return key == self.source if self.exact else key.startswith(self.source)

    def apply(self, key: str) -> str | None:
        return None if self.target is None else self.target + key[len(self.source):]


def trunk(source_prefix: str, name: str) -> tuple[Rule, ...]:
    """Rules renaming `source_prefix` + a torchvision ResNet-50 name onto that name."""
    return tuple(Rule(name, source_prefix + p, p) for p in TRUNK_PREFIXES)


def drop(name: str, source: str, exact: bool = False, sobel: str | None = None) -> Rule:
    return Rule(name, source, None, exact=exact, sobel=sobel)


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


def listed(keys: Sequence[str], limit: int = MAX_LISTED) -> str:
    """`keys` for an error message: the first `limit` of them, then a count of the rest."""
    shown = ", ".join(repr(k) for k in keys[:limit])
    more = len(keys) - limit
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

    @property
    def problems(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.mismatched)

    def describe(self) -> str:
        """Every kind of difference at once: missing, unexpected and wrong-shape keys with counts."""
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
    return dict(_canonical_items(sobel))


@functools.lru_cache(maxsize=2)
def _canonical_items(sobel: bool) -> tuple[tuple[str, tuple[int, ...]], ...]:
    with torch.device("meta"):
        model = build_resnet50(sobel=sobel)
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())
