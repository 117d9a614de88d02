"""Small attrs helpers shared by the model modules."""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any

import attrs


def frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(value or {}))


def to_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


def to_frozenset(value: Iterable[Any]) -> frozenset[Any]:
    return frozenset(value)


def extra_field() -> Any:
    """Vendor-only data: a read-only mapping, compared but not hashed."""
    return attrs.field(factory=dict, converter=frozen_mapping, hash=False, kw_only=True)


def tags_field() -> Any:
    return attrs.field(factory=frozenset, converter=to_frozenset, kw_only=True)
