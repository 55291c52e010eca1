"""Frozen, typed configs: build from a mapping (unknown keys raise), hash stably.

A field declared with `execution_detail(default)` says how a run is executed, not what it computes
(gradient accumulation, checkpoint interval): it is set and overridden like any field, but
`config_hash` and `protocol_dict` leave it out, as the world size is left out, so a run with another
value of it finds and continues the same resume state and counts as the same finished table cell.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")
EXECUTION_DETAIL = "dcbench_execution_detail"  # dataclass field metadata key (see execution_detail)


class ConfigError(ValueError):
    """A config mapping does not fit its dataclass."""


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        return from_dict(tp, value, where=where)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where) for v in value)
        return tuple(_convert(a, v, where) for a, v in zip(args, value, strict=True))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None) and value is None:
                return None
            if dataclasses.is_dataclass(arg) and isinstance(value, Mapping):
                return from_dict(arg, value, where=where)
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build the frozen dataclass `cls` from `data`; unknown keys raise ConfigError."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {unknown} for {cls.__name__}{' at ' + where if where else ''}; "
            f"known keys: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _convert(hints[name], value, f"{where}.{name}" if where else name)
        for name, value in data.items()
    }
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def execution_detail(default: Any) -> Any:
    """A dataclass field with `default` that `config_hash` / `protocol_dict` leave out (module doc)."""
    return dataclasses.field(default=default, metadata={EXECUTION_DETAIL: True})


def _protocol_view(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _protocol_view(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not f.metadata.get(EXECUTION_DETAIL)}
    if isinstance(value, (list, tuple)):
        return [_protocol_view(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _protocol_view(v) for k, v in value.items()}
    return value


def protocol_dict(cfg: Any) -> dict[str, Any]:
    """`to_dict(cfg)` without the execution details (at any depth): what the numbers depend on."""
    return json.loads(json.dumps(_protocol_view(cfg)))


def config_hash(cfg: Any) -> str:
    """sha256 (first 16 hex digits) of the config's canonical JSON, class name included, execution
    details left out."""
    payload = json.dumps({"class": type(cfg).__name__, "fields": _protocol_view(cfg)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def replace(cfg: T, **changes: Any) -> T:
    """A copy of `cfg` with `changes`; unknown keys raise ConfigError."""
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(cfg)})  # type: ignore[arg-type]
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown} for {type(cfg).__name__}")
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]
