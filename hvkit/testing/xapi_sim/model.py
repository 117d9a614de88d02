"""The XenAPI data model (``model.json``, generated from xen-api's datamodel): types, defaults, coercion."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import attrs

__all__ = ["NULL", "Failure", "XDate", "XType", "check_error", "coerce", "default_for", "model", "parse_type"]

NULL = "OpaqueRef:NULL"


@functools.cache
def model() -> dict[str, Any]:
    """The whole model: ``classes`` (fields, messages), ``enums``, ``errors`` (with parameter names)."""
    data: dict[str, Any] = json.loads(Path(__file__).with_name("model.json").read_text())
    return data


class Failure(Exception):
    """An XAPI error: ``["CODE", param, ...]`` as sent in ``ErrorDescription``."""

    def __init__(self, code: str, *params: object) -> None:
        self.description = [code, *(str(p) for p in params)]
        super().__init__(self.description)


def check_error(description: list[str]) -> None:
    """Raise AssertionError when an error is not in the model or has the wrong number of parameters."""
    code, params = description[0], description[1:]
    known = model()["errors"].get(code)
    assert known is not None, f"{code} is not an error of the XenAPI model"
    if "params" in known:
        assert len(params) == len(known["params"]), f"{code} takes {known['params']}, sent {params}"


class XDate(str):
    """An XML-RPC dateTime.iso8601 value (``20261128T06:15:00Z``)."""

    __slots__ = ()


@attrs.frozen
class XType:
    form: str  # int float bool string datetime ref record enum set map
    name: str = ""  # class of a ref/record, name of an enum
    item: XType | None = None  # set element, map value
    key: XType | None = None  # map key


_MAP = re.compile(r"^\((.+) -> (.+)\) map$")


@functools.cache
def parse_type(text: str) -> XType:
    text = text.strip()
    if text in ("int", "float", "bool", "string", "datetime"):
        return XType(text)
    if text.startswith("(") and text.endswith(") map"):
        inner = text[1:-5]
        depth = 0
        for i in range(len(inner) - 3):  # split at the top-level " -> "
            if inner[i] == "(":
                depth += 1
            elif inner[i] == ")":
                depth -= 1
            elif depth == 0 and inner[i : i + 4] == " -> ":
                return XType("map", key=parse_type(inner[:i]), item=parse_type(inner[i + 4 :]))
        found = _MAP.match(text)
        assert found is not None, text
        return XType("map", key=parse_type(found.group(1)), item=parse_type(found.group(2)))
    if text.endswith(" set"):
        return XType("set", item=parse_type(text[:-4]))
    if text.startswith("enum "):
        return XType("enum", text[5:])
    if text.endswith(" ref"):
        return XType("ref", text[:-4])
    if text.endswith(" record"):
        return XType("record", text[:-7])
    return XType("string")  # "void" and the odd "<class> record"


def default_for(type_text: str, literal: str | None) -> Any:
    """A field's value in a new object: the model's default, else the type's zero."""
    xt = parse_type(type_text)
    if literal is not None:
        text = literal.strip()
        if xt.form in ("set", "map"):
            return [] if xt.form == "set" else {}
        if xt.form == "ref":
            return NULL
        if xt.form == "bool":
            return text == "true"
        if xt.form == "int":
            return int(text)
        if xt.form == "float":
            return float(text)
        if xt.form == "datetime":
            return XDate(text)
        if text.startswith('"') and text.endswith('"'):
            return text[1:-1]
        return text
    return zero(xt)


def zero(xt: XType) -> Any:
    if xt.form == "int":
        return 0
    if xt.form == "float":
        return 0.0
    if xt.form == "bool":
        return False
    if xt.form == "datetime":
        return XDate("19700101T00:00:00Z")
    if xt.form == "ref":
        return NULL
    if xt.form == "set":
        return []
    if xt.form in ("map", "record"):
        return {}
    if xt.form == "enum":
        return model()["enums"].get(xt.name, [""])[0]
    return ""


def coerce(xt: XType, value: Any, field: str) -> Any:
    """Check and convert one wire value to its model type (ints come as strings over XML-RPC)."""
    form = xt.form
    if form == "string":
        if isinstance(value, str):
            return value
    elif form == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
    elif form == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif form == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif form in ("ref", "datetime"):
        if isinstance(value, str):
            return XDate(value) if form == "datetime" else value
        if form == "datetime" and hasattr(value, "value"):
            return XDate(str(value.value))
    elif form == "enum":
        values = model()["enums"].get(xt.name)
        if isinstance(value, str) and (values is None or value in values):
            return value
        if isinstance(value, str):
            raise Failure("INVALID_VALUE", field, value)
    elif form == "set":
        if isinstance(value, list | tuple):
            assert xt.item is not None
            return [coerce(xt.item, v, field) for v in value]
    elif form == "map":
        if isinstance(value, dict):
            assert xt.item is not None
            return {str(k): coerce(xt.item, v, field) for k, v in value.items()}
    elif form == "record" and isinstance(value, dict):
        return dict(value)
    raise Failure("FIELD_TYPE_ERROR", field)
