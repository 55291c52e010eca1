from __future__ import annotations

import dataclasses

import pytest

from dcbench.config import ConfigError, config_hash, from_dict, replace, to_dict


@dataclasses.dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    steps: tuple[int, ...] = (30, 60)


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = Inner()
    maybe: Inner | None = None


def test_from_dict_builds_nested_and_converts() -> None:
    cfg = from_dict(Outer, {"name": "y", "inner": {"lr": 1, "steps": [1, 2]}, "maybe": {"lr": 2}})
    assert cfg.inner == Inner(lr=1.0, steps=(1, 2))
    assert isinstance(cfg.inner.lr, float)
    assert cfg.maybe == Inner(lr=2.0)


def test_unknown_keys_raise_with_names() -> None:
    with pytest.raises(ConfigError, match=r"\['typo'\].*known keys"):
        from_dict(Outer, {"typo": 1})
    with pytest.raises(ConfigError, match="inner"):
        from_dict(Outer, {"inner": {"lrr": 1}})
    with pytest.raises(ConfigError):
        replace(Outer(), nope=1)


def test_hash_is_stable_and_sensitive() -> None:
    assert config_hash(Outer()) == config_hash(from_dict(Outer, to_dict(Outer())))
    assert config_hash(Outer()) != config_hash(replace(Outer(), name="z"))
