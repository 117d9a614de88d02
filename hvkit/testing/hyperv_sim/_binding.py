"""Binding a command the way PowerShell does: names, aliases, unique prefixes and parameter sets.

The Hyper-V cmdlets' parameter sets come from ``cmdlets.json`` (generated from the Hyper-V module's
reflection dump by ``_generate``); the few core cmdlets templates use are listed here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._ops import _CLASSES
from ._output import PSError
from ._psparse import Invocation

__all__ = ["CMDLETS", "CORE", "SWITCHES", "validate"]

_DATA = json.loads(Path(__file__).with_name("cmdlets.json").read_text())
CMDLETS: dict[str, dict[str, Any]] = _DATA["cmdlets"]
_CLASSES.update({name: info["class"] for name, info in CMDLETS.items()})
SWITCHES = {name: set(info["switches"]) for name, info in CMDLETS.items()}
COMMON = {
    "Verbose": "vb",
    "Debug": "db",
    "ErrorAction": "ea",
    "WarningAction": "wa",
    "InformationAction": "infa",
    "ErrorVariable": "ev",
    "WarningVariable": "wv",
    "InformationVariable": "iv",
    "OutVariable": "ov",
    "OutBuffer": "ob",
    "PipelineVariable": "pv",
}
# Core (non Hyper-V) commands templates may call, with their parameters (Windows PowerShell 5.1)
CORE: dict[str, set[str]] = {
    "ConvertTo-Json": {"InputObject", "Depth", "Compress"},
    "ConvertFrom-Json": {"InputObject"},
    "ForEach-Object": {"Process", "Begin", "End", "RemainingScripts", "MemberName", "ArgumentList", "InputObject"},
    "Where-Object": {"FilterScript", "Property", "Value", "EQ", "NE", "GT", "LT", "Like", "Match", "In", "InputObject"},
    "Select-Object": {
        "Property",
        "ExcludeProperty",
        "ExpandProperty",
        "Unique",
        "Last",
        "First",
        "Skip",
        "Index",
        "InputObject",
        "SkipLast",
        "Wait",
    },
    "Get-ChildItem": {
        "Path",
        "LiteralPath",
        "Filter",
        "Include",
        "Exclude",
        "Recurse",
        "Depth",
        "Force",
        "Name",
        "File",
        "Directory",
        "Hidden",
        "ReadOnly",
        "System",
        "Attributes",
    },
    "Test-Path": {"Path", "LiteralPath", "Filter", "Include", "Exclude", "PathType", "IsValid", "Credential"},
    "Remove-Item": {"Path", "LiteralPath", "Filter", "Include", "Exclude", "Recurse", "Force", "Credential"},
    "New-Item": {"Path", "Name", "ItemType", "Value", "Force", "Credential"},
    "Join-Path": {"Path", "ChildPath", "Resolve", "Credential"},
    "Split-Path": {"Path", "LiteralPath", "Qualifier", "NoQualifier", "Parent", "Leaf", "Resolve", "IsAbsolute"},
    "New-Object": {"TypeName", "ArgumentList", "Property", "ComObject", "Strict"},
    "Write-Error": {
        "Message",
        "Exception",
        "ErrorRecord",
        "Category",
        "ErrorId",
        "TargetObject",
        "RecommendedAction",
        "CategoryActivity",
        "CategoryReason",
        "CategoryTargetName",
        "CategoryTargetType",
    },
    "Out-Null": {"InputObject"},
    "Get-Counter": {"Counter", "SampleInterval", "MaxSamples", "Continuous", "ComputerName", "ListSet"},
    "Get-CimInstance": {
        "ClassName",
        "Filter",
        "Property",
        "Namespace",
        "ComputerName",
        "CimSession",
        "Query",
        "KeyOnly",
        "Shallow",
        "OperationTimeoutSec",
        "ResourceUri",
        "InputObject",
    },
}


def _error(name: str, message: str, error_id: str, inv: Invocation, script: str) -> PSError:
    cls = CMDLETS[name]["class"] if name in CMDLETS else f"Microsoft.PowerShell.Commands.{name.replace('-', '')}Command"
    lines = script.splitlines()
    return PSError(
        message,
        "InvalidArgument",
        f"{error_id},{cls}",
        activity=name,
        exception="System.Management.Automation.ParameterBindingException",
        line=inv.line,
        source_line=lines[inv.line - 1].strip() if inv.line <= len(lines) else "",
    )


def _resolve_name(given: str, names: set[str], aliases: dict[str, str]) -> str | None:
    lower = given.lower()
    for name in names:
        if name.lower() == lower:
            return name
    for alias, target in aliases.items():
        if alias.lower() == lower:
            return target
    matches = sorted(n for n in names if n.lower().startswith(lower))
    return matches[0] if len(matches) == 1 else None


def validate(inv: Invocation, script: str) -> None:
    """Bind ``inv`` the way PowerShell would (names, aliases, unique prefixes, parameter sets); raise PSError."""
    common = set(COMMON) | {"WhatIf", "Confirm"}
    common_aliases = {v: k for k, v in COMMON.items()}
    if inv.name in CORE:
        for given in inv.params:
            if _resolve_name(given, CORE[inv.name] | common, common_aliases) is None:
                raise _error(
                    inv.name,
                    f"A parameter cannot be found that matches parameter name '{given}'.",
                    "NamedParameterNotFound",
                    inv,
                    script,
                )
        return
    info = CMDLETS.get(inv.name)
    if info is None:
        lines = script.splitlines()
        raise PSError(
            f"The term '{inv.name}' is not recognized as the name of a cmdlet, function, script file, or operable "
            "program. Check the spelling of the name, or if a path was included, verify that the path is correct "
            "and try again.",
            "ObjectNotFound",
            "CommandNotFoundException",
            exception="System.Management.Automation.CommandNotFoundException",
            target=inv.name,
            target_type="String",
            line=inv.line,
            source_line=lines[inv.line - 1].strip() if inv.line <= len(lines) else "",
        )
    sets: dict[str, dict[str, list[Any]]] = info["sets"]
    all_names = {p for members in sets.values() for p in members}
    bound: list[str] = []
    for given in inv.params:
        name = _resolve_name(given, all_names | set(COMMON), {**info["aliases"], **common_aliases})
        if name is None:
            raise _error(
                inv.name,
                f"A parameter cannot be found that matches parameter name '{given}'.",
                "NamedParameterNotFound",
                inv,
                script,
            )
        if name in bound:
            raise _error(
                inv.name,
                f"Cannot bind parameter because parameter '{name}' is specified more than once.",
                "ParameterAlreadyBound",
                inv,
                script,
            )
        bound.append(name)
    named = [b for b in bound if b not in common]
    candidates = {s: m for s, m in sets.items() if all(n in m for n in named)}
    if not candidates:
        raise _error(
            inv.name,
            "Parameter set cannot be resolved using the specified named parameters.",
            "AmbiguousParameterSet",
            inv,
            script,
        )
    satisfied = {}
    for set_name, members in candidates.items():
        free_positions = sorted(m[1] for p, m in members.items() if m[1] is not None and p not in named)
        positional_bound = free_positions[: inv.positional]
        if len(positional_bound) < inv.positional:
            continue
        missing = [
            p
            for p, m in members.items()
            if m[0] and p not in named and m[1] not in positional_bound and not (inv.piped and m[2])
        ]
        if not missing:
            satisfied[set_name] = members
    if not satisfied:
        missing_all = sorted({p for m in candidates.values() for p, e in m.items() if e[0] and p not in named})
        raise _error(
            inv.name,
            f"Cannot process command because of one or more missing mandatory parameters: {' '.join(missing_all)}.",
            "MissingMandatoryParameter",
            inv,
            script,
        )
    if len(satisfied) > 1 and info["default"] not in satisfied and not inv.piped:
        raise _error(
            inv.name,
            "Parameter set cannot be resolved using the specified named parameters.",
            "AmbiguousParameterSet",
            inv,
            script,
        )
