"""Validate API parameters the way PVE's JSONSchema does, against the generated ``schema.json``.

Error texts follow PVE's (``property is missing and it is not optional``, ``type check ('integer')
failed - got 'x'``, ``value 'x' does not have a value in the enumeration 'a, b'``, property-string
errors as ``invalid format - format error\\nnet0.model: ...``); each ends with a newline, as PVE's do.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["ParamErrors", "check_params", "lookup", "parse_property_string", "schema"]

ParamErrors = dict[str, str]

# How many of each "name[n]" parameter PVE allows (PVE::QemuServer and PVE::QemuServer::Drive).
ARRAY_LIMITS = {
    "net": 32,
    "ipconfig": 32,
    "scsi": 31,
    "virtio": 16,
    "sata": 6,
    "ide": 4,
    "unused": 256,
    "usb": 14,
    "serial": 4,
    "parallel": 3,
    "hostpci": 16,
    "numa": 8,
    "virtiofs": 10,
}
_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


@cache
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(__file__).with_name("schema.json").read_text())
    return data


def lookup(path: str, method: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = schema()["paths"].get(path, {}).get(method)
    return found


def _expand(props: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, defn in props.items():
        if name.endswith("[n]"):
            base = name[:-3]
            for i in range(ARRAY_LIMITS.get(base, 32)):
                out[f"{base}{i}"] = defn
        else:
            out[name] = defn
    return out


@cache
def _expanded(path: str, method: str) -> dict[str, Any]:
    info = lookup(path, method)
    return _expand(info["properties"]) if info else {}


def parse_bool(value: object) -> bool | None:
    text = str(value).strip().lower()
    if text in _BOOL_TRUE:
        return True
    if text in _BOOL_FALSE:
        return False
    return None


def check_params(path: str, method: str, params: Mapping[str, Any]) -> ParamErrors:
    """Check ``params`` (path parameters included) against the schema of ``method path``."""
    info = lookup(path, method)
    if info is None:
        return {}
    props = _expanded(path, method)
    errors: ParamErrors = {}
    for name, defn in props.items():
        if name not in params and not defn.get("optional"):
            errors[name] = "property is missing and it is not optional\n"
    for name, value in params.items():
        defn = props.get(name)
        if defn is None:
            if not info.get("additionalProperties"):
                errors[name] = "property is not defined in schema and the schema does not allow additional properties\n"
            continue
        msg = check_value(name, defn, value)
        if msg:
            errors[name] = msg + "\n"
        needed = defn.get("requires")
        if isinstance(needed, str) and needed not in params:
            errors[needed] = f"missing property - '{name}' requires this property\n"
    return errors


def check_value(name: str, defn: Mapping[str, Any], value: object) -> str | None:
    """Return PVE's message for a bad value, or None."""
    jtype = defn.get("type", "string")
    text = value if isinstance(value, str) else str(value)
    if jtype == "boolean":
        if parse_bool(text) is None:
            return f"type check ('boolean') failed - got '{text}'"
        return None
    if jtype == "integer":
        if not re.fullmatch(r"[+-]?\d+", text.strip()):
            return f"type check ('integer') failed - got '{text}'"
        return _range(defn, int(text))
    if jtype == "number":
        try:
            number = float(text)
        except ValueError:
            return f"type check ('number') failed - got '{text}'"
        return _range(defn, number)
    if jtype == "array":
        return None
    if "maxLength" in defn and len(text) > int(defn["maxLength"]):
        return f"value may only be {defn['maxLength']} characters long"
    if "minLength" in defn and len(text) < int(defn["minLength"]):
        return f"value must have at least {defn['minLength']} characters"
    if "enum" in defn and text not in defn["enum"]:
        return f"value '{text}' does not have a value in the enumeration '{', '.join(defn['enum'])}'"
    if "pattern" in defn and not re.fullmatch(_perl_regex(defn["pattern"]), text):
        return "value does not match the regex pattern"
    fmt = defn.get("format")
    if isinstance(fmt, dict):
        _, errs = parse_property_string(fmt, text, name)
        if errs:
            return "invalid format - format error\n" + "\n".join(f"{k}: {v}" for k, v in errs.items())
        return None
    if isinstance(fmt, str):
        err = check_format(fmt, text)
        if err:
            return f"invalid format - {err}"
    return None


@cache
def _perl_regex(pattern: str) -> str:
    """PVE's schema holds Perl regexes; ``(?^:...)`` is Perl's "default flags" group."""
    return pattern.replace("(?^:", "(?:")


def _range(defn: Mapping[str, Any], number: float) -> str | None:
    if "minimum" in defn and number < float(defn["minimum"]):
        return f"value must have a minimum value of {defn['minimum']}"
    if "maximum" in defn and number > float(defn["maximum"]):
        return f"value must have a maximum value of {defn['maximum']}"
    return None


def parse_property_string(fmt: Mapping[str, Any], text: str, path: str = "") -> tuple[dict[str, str], dict[str, str]]:
    """Parse ``key=value,key=value`` (with a default key and key aliases); return (values, errors)."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    prefix = f"{path}." if path else ""
    default_key = next((k for k, d in fmt.items() if d.get("default_key")), None)
    for part in text.split(","):
        if part == "":
            continue
        key, eq, val = part.partition("=")
        if not eq:
            if default_key is None:
                errors[f"{prefix}{key}"] = (
                    "property is not defined in schema and the schema does not allow additional properties"
                )
                continue
            key, val = default_key, part
            if key in values:
                errors[f"{prefix}{key}"] = "duplicate key in comma-separated list property"
                continue
        defn = fmt.get(key)
        if defn is None:
            errors[f"{prefix}{key}"] = (
                "property is not defined in schema and the schema does not allow additional properties"
            )
            continue
        if "keyAlias" in defn:  # e.g. net0 "virtio=MAC": model=virtio, macaddr=MAC
            values[defn["keyAlias"]] = key
            key = defn["alias"]
            defn = fmt[key]
        elif "alias" in defn:
            key = defn["alias"]
            defn = fmt[key]
        if key in values:
            errors[f"{prefix}{key}"] = "duplicate key in comma-separated list property"
            continue
        values[key] = val
    for key, val in values.items():
        msg = check_value(key, fmt[key], val) if key in fmt else None
        if msg:
            errors[f"{prefix}{key}"] = msg
    for key, defn in fmt.items():
        if "alias" in defn or "keyAlias" in defn:
            continue
        if not defn.get("optional") and key not in values:
            errors[f"{prefix}{key}"] = "property is missing and it is not optional"
    return values, errors


# -- named formats ---------------------------------------------------------------------------------
_NODE = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?")
_STORAGE_ID = re.compile(r"[a-z][a-z0-9\-_.]*[a-z0-9]", re.I)
_CONFIGID = re.compile(r"[a-z][a-z0-9_]+", re.I)
_DNS = re.compile(r"(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?)")
_VOLID = re.compile(r"([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)", re.I)
_MAC = re.compile(r"[a-f0-9]{2}(:[a-f0-9]{2}){5}", re.I)
_TAG = re.compile(r"[a-z0-9_][a-z0-9_\-+.]*", re.I)
_NOT_CIDR = "value does not look like a valid IPv{} address with CIDR"
_URLENCODED = re.compile(r"[-%a-zA-Z0-9_.!~*'()]*")
_SIZE = re.compile(r"\d+(\.\d+)?[KMGT]?")
_CONTENT = {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"}
IPCONFIG_FORMAT: dict[str, Any] = {
    "ip": {"type": "string", "optional": 1},
    "gw": {"type": "string", "optional": 1},
    "ip6": {"type": "string", "optional": 1},
    "gw6": {"type": "string", "optional": 1},
}


def _ipconfig(text: str) -> str | None:
    values, errs = parse_property_string(IPCONFIG_FORMAT, text)
    if errs:
        return "format error\n" + "\n".join(f"{k}: {v}" for k, v in errs.items())
    for key, version, special in (("ip", 4, {"dhcp"}), ("ip6", 6, {"dhcp", "auto"})):
        if key in values and values[key] not in special:
            try:
                net = ipaddress.ip_interface(values[key])
            except ValueError:
                return f"format error\n{key}: invalid format - {_NOT_CIDR.format(version)}"
            if net.version != version or "/" not in values[key]:
                return f"format error\n{key}: invalid format - {_NOT_CIDR.format(version)}"
    for key, version in (("gw", 4), ("gw6", 6)):
        if key in values:
            try:
                if ipaddress.ip_address(values[key]).version != version:
                    raise ValueError
            except ValueError:
                return f"format error\n{key}: invalid format - value does not look like a valid IPv{version} address"
    return None


def _volume_or_path(text: str, *, qm_path: bool) -> str | None:
    if text.startswith("/"):
        return None
    if qm_path and text in ("none", "cdrom"):
        return None
    if _VOLID.fullmatch(text):
        return None
    return f"unable to parse volume ID '{text}'"


def _storage_pairs(text: str) -> str | None:
    for pair in text.split(","):
        for sid in pair.split(":") if ":" in pair else [pair]:
            if sid != "1" and not _STORAGE_ID.fullmatch(sid):
                return f"storage ID '{sid}' contains illegal characters"
    return None


def _tags(text: str) -> str | None:
    for tag in re.split(r"[;, ]+", text.strip()):
        if tag and not _TAG.fullmatch(tag):
            return f"invalid tag '{tag}'"
    return None


def _unicast_mac(text: str) -> str | None:
    if not _MAC.fullmatch(text) or int(text[:2], 16) & 1:
        return "value does not look like a valid unicast MAC address"
    return None


FORMATS: dict[str, Callable[[str], str | None]] = {
    "pve-node": lambda v: None if _NODE.fullmatch(v) else "value does not look like a valid node name",
    "pve-vmid": lambda v: None if re.fullmatch(r"\d+", v) else "value does not look like a valid VM ID",
    "pve-storage-id": lambda v: None if _STORAGE_ID.fullmatch(v) else f"storage ID '{v}' contains illegal characters",
    "pve-configid": lambda v: None if _CONFIGID.fullmatch(v) else f"invalid configuration ID '{v}'",
    "dns-name": lambda v: None if _DNS.fullmatch(v) else "value does not look like a valid DNS name",
    "pve-volume-id": lambda v: None if _VOLID.fullmatch(v) else f"unable to parse volume ID '{v}'",
    "pve-volume-id-or-qm-path": lambda v: _volume_or_path(v, qm_path=True),
    "pve-volume-id-or-absolute-path": lambda v: _volume_or_path(v, qm_path=False),
    "mac-addr": _unicast_mac,
    "pve-bridge-id": lambda v: (
        None if re.fullmatch(r"[-_.\w\d]+", v) else f"invalid format - '{v}' is not a valid bridge name"
    ),
    "pve-tag-list": _tags,
    "urlencoded": lambda v: None if _URLENCODED.fullmatch(v) else f"invalid urlencoded string: {v}",
    "disk-size": lambda v: None if _SIZE.fullmatch(v) else "unable to parse size",
    "pve-qm-ipconfig": _ipconfig,
    "pve-storage-content": lambda v: None if v in _CONTENT else f"invalid content type '{v}'",
    "pve-storage-content-list": lambda v: next(
        (f"invalid content type '{c}'" for c in v.split(",") if c not in _CONTENT), None
    ),
    "storage-pair-list": _storage_pairs,
    "pve-poolid": lambda v: (
        None if re.fullmatch(r"[A-Za-z0-9_\-/]+", v) else f"pool name '{v}' contains illegal characters"
    ),
    "pve-realm": lambda v: (
        None if re.fullmatch(r"[A-Za-z][A-Za-z0-9.\-_]+", v) else f"realm name '{v}' contains illegal characters"
    ),
    "pve-configid-list": lambda v: next(
        (f"invalid configuration ID '{c}'" for c in re.split(r"[,;\s]+", v) if c and not _CONFIGID.fullmatch(c)), None
    ),
}


def check_format(fmt: str, value: str) -> str | None:
    """PVE's message for a value that does not match a named format; formats not modelled pass."""
    check = FORMATS.get(fmt)
    return check(value) if check else None
