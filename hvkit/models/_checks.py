"""Type and range checks for what users build (specs): each raises InvalidSpec saying what is wrong."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import InvalidSpec

__all__ = [
    "check_int",
    "check_number",
    "check_optional_str",
    "check_text",
    "has_control",
    "shown",
    "spec_mapping",
    "spec_tuple",
    "string_set",
    "string_tuple",
]


def has_control(text: str, allowed: str = "") -> bool:
    """True when ``text`` holds a control/format/unassigned character not in ``allowed``."""
    return any(unicodedata.category(c).startswith("C") and c not in allowed for c in text)


def check_int(what: str, value: object, low: int, high: int) -> int:
    """An int (not a bool) in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"{what} must be an integer, got {shown(value)}")
    if not low <= value <= high:
        raise InvalidSpec(f"{what} must be between {low} and {high}, got {shown(value)}")
    return value


def check_number(what: str, value: object, low: float, high: float, *, low_text: str = "") -> float:
    """A finite int or float (not a bool) in ``low..high``; ``low_text`` words the lower bound."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSpec(f"{what} must be a number, got {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidSpec(f"{what} must be a finite number, got {value}")
    if value < low:
        raise InvalidSpec(f"{what} must be at least {low_text or low}, got {shown(value)}")
    if value > high:
        raise InvalidSpec(f"{what} must be <= {high}, got {shown(value)}")
    return value


def check_optional_str(what: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidSpec(f"{what} must be a string or None, got {type(value).__name__}")
    return value


def check_text(what: str, value: object, *, limit: int, allowed: str = "\t\n\r") -> str:
    """Free text: a str of at most ``limit`` characters without control characters but ``allowed``."""
    if not isinstance(value, str):
        raise InvalidSpec(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidSpec(f"{what} is {len(value)} characters long; at most {limit}")
    if has_control(value, allowed):
        raise InvalidSpec(f"{what} contains a control character")
    return value


def _items(what: str, kind: str, value: object) -> list[Any]:
    """The items of a collection; a string, bytes, a mapping, None or a lone object is refused."""
    if isinstance(value, str | bytes | bytearray | Mapping) or not isinstance(value, Iterable):
        raise InvalidSpec(f"{what} must be a {kind}, got {type(value).__name__}")
    try:
        return list(value)
    except InvalidSpec:
        raise
    except Exception as exc:  # a user's iterator that fails while read
        raise InvalidSpec(f"{what} could not be read: {type(exc).__name__}") from None


def spec_tuple(what: str, item: type) -> Any:
    """A converter: any iterable of ``item`` (not a string, mapping or single item) -> tuple."""

    def convert(value: object) -> tuple[Any, ...]:
        if isinstance(value, item):
            raise InvalidSpec(f"{what} must be a list of {item.__name__}, got a single {item.__name__}")
        items = _items(what, f"list of {item.__name__}", value)
        for i, entry in enumerate(items):
            if not isinstance(entry, item):
                raise InvalidSpec(f"{what}[{i}] must be a {item.__name__}, got {type(entry).__name__}")
        return tuple(items)

    return convert


def string_tuple(what: str, item_what: str, value: object) -> tuple[str, ...]:
    """A list of strings (a single string is refused: it is not a list of one)."""
    return tuple(_strings(what, item_what, "list of strings", value))


def string_set(what: str, item_what: str, value: object) -> frozenset[str]:
    """A set of strings (a single string is refused: ``"abc"`` is not ``{"a", "b", "c"}``)."""
    return frozenset(_strings(what, item_what, "set of strings", value))


def _strings(what: str, item_what: str, kind: str, value: object) -> list[str]:
    items = _items(what, kind, value)
    for item in items:
        if not isinstance(item, str):
            raise InvalidSpec(f"{item_what} must be a string, got {type(item).__name__}")
    return items


def spec_mapping(what: str, value: object) -> Mapping[str, Any]:
    """A mapping with string keys (None: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"{what} must be a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise InvalidSpec(f"{what} keys must be strings, got {type(key).__name__}")
    return value


def shown(value: object) -> str:
    """A short, safe rendering of a wrong value: numbers and strings (cut), else the type's name."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return "a number too large to show"
    if isinstance(value, str):
        return repr(value[:60]) + ("..." if len(value) > 60 else "")
    if isinstance(value, int | float | bool | type(None)):
        return repr(value)
    return f"a {type(value).__name__}"
