from __future__ import annotations

import dataclasses

import pytest

from dcbench.config import (
    ConfigError,
    config_hash,
    execution_detail,
    from_dict,
    protocol_dict,
    replace,
    to_dict,
)


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


@dataclasses.dataclass(frozen=True)
class WithDetail:
    inner: Inner = Inner()
    batch_size: int = 8
    accum_steps: int = execution_detail(1)


@dataclasses.dataclass(frozen=True)
class Nested:
    run: WithDetail = WithDetail()


def test_execution_details_are_fields_but_not_protocol() -> None:
    two = from_dict(WithDetail, {"accum_steps": 2})
    assert two.accum_steps == 2 and two != WithDetail() and to_dict(two)["accum_steps"] == 2
    assert config_hash(two) == config_hash(WithDetail())  # the same protocol, the same cell
    assert config_hash(replace(two, batch_size=4)) != config_hash(two)
    assert "accum_steps" not in protocol_dict(two) and protocol_dict(two)["inner"] == to_dict(Inner())
    deep = Nested(run=two)
    assert config_hash(deep) == config_hash(Nested()) and "accum_steps" not in protocol_dict(deep)["run"]


def test_a_config_without_details_hashes_as_before() -> None:
    import hashlib
    import json

    legacy = json.dumps({"class": "Outer", "fields": dataclasses.asdict(Outer())}, sort_keys=True)
    assert config_hash(Outer()) == hashlib.sha256(legacy.encode()).hexdigest()[:16]
