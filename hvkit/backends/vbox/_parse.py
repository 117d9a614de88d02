"""Lenient readers of VBoxManage output: every reader skips lines it does not know.

Real outputs drift between versions (a ``WARNING:`` line before anything, 7.0's ``Encryption:`` and
`` rec_screen0`` lines inside ``--machinereadable`` output, keys added or renamed), so nothing here
fails on an unexpected line; a reader only takes the lines whose shape it knows.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "guest_properties",
    "human_vms",
    "key_value_blocks",
    "list_vms",
    "machinereadable",
    "metrics_rows",
    "snapshot_tree",
    "version",
]

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(\S*)$")
_VM_LINE = re.compile(r'^"(.*)" \{([0-9a-fA-F-]{36})\}$')
_MR_LINE = re.compile(r'^("(?:[^"\\]|\\.)*"|[A-Za-z][^=]*?)=(.*)$')
_BLOCK_LINE = re.compile(r"^([A-Za-z][^:]*?):\s*(.*)$")
_SNAP_KEY = re.compile(r"^Snapshot(Name|UUID|Description)((?:-\d+)*)$")
_V61_ATTACH = re.compile(r"^(.+) \((\d+), (\d+)\): (.+) \(UUID: ([0-9a-fA-F-]{36})\)$")
_V70_CTL = re.compile(r"^#(\d+): '(.*)', Type: ([^,]+),")
_V70_ATTACH = re.compile(r'^\s+Port (\d+), Unit (\d+): UUID: ([0-9a-fA-F-]{36}), Location: "(.*)"$')
_GUESTPROP_61 = re.compile(r"^Name: (\S+), value: (.*?), timestamp: ")
_GUESTPROP_70 = re.compile(r"^(/\S+)\s+= '(.*)'(?: @ .*)?$")
_ROW = re.compile(r"^[A-Z][^:]{0,27}:\s{2,}\S")
_METRIC = re.compile(r"^(.*?)\s+((?:CPU|RAM|Net|Disk|Guest)/\S+)\s+(.*)$")


def version(text: str) -> tuple[tuple[int, int, int], str]:
    """The version from ``--version`` output: the last line shaped like one (a WARNING line may come first)."""
    for line in reversed(text.splitlines()):
        match = _VERSION.match(line.strip())
        if match:
            numbers = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
            return numbers, line.strip()
    raise ValueError(f"no version number in VBoxManage --version output {text[-200:]!r}")


def list_vms(text: str) -> list[tuple[str, str]]:
    """``list vms`` / ``list runningvms``: (name, uuid) per VM line."""
    return [(m.group(1), m.group(2).lower()) for m in map(_VM_LINE.match, text.splitlines()) if m]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _closed(value: str) -> bool:
    """A quoted value is complete when it ends with a quote that no backslash escapes."""
    if not value.startswith('"') or len(value) < 2 or not value.endswith('"'):
        return not value.startswith('"')
    backslashes = len(value[:-1]) - len(value[:-1].rstrip("\\"))
    return backslashes % 2 == 0


def machinereadable(text: str) -> dict[str, str]:
    """``key=value`` lines; quoted values unescaped; a value with raw newlines (a description) joined back."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _MR_LINE.match(lines[i])
        i += 1
        if not match:
            continue
        key, value = _unquote(match.group(1)), match.group(2)
        while value.startswith('"') and not _closed(value) and i < len(lines):
            value += "\n" + lines[i]
            i += 1
        out[key] = _unquote(value)
    return out


def key_value_blocks(text: str, first_key: str) -> list[dict[str, str]]:
    """Blocks of ``Key:   value`` lines (``list hdds``, ``list hostonlyifs`` ...); a block starts at ``first_key``."""
    blocks: list[dict[str, str]] = []
    for line in text.splitlines():
        match = _BLOCK_LINE.match(line)
        if not match:
            continue
        key, value = match.group(1).strip(), match.group(2).strip()
        if key == first_key or not blocks:  # lines before the first block (a WARNING) make a block of their own
            blocks.append({})
        if blocks and key not in blocks[-1]:
            blocks[-1][key] = value
    return blocks


def snapshot_tree(values: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
    """Snapshots (uuid, name, description, parent uuid) from ``Snapshot*`` keys, and the current one's uuid."""
    by_suffix: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        match = _SNAP_KEY.match(key)
        if match:
            by_suffix.setdefault(match.group(2), {})[match.group(1).lower()] = value
    snaps = []
    for suffix, fields in by_suffix.items():
        if "uuid" not in fields:
            continue
        parent = by_suffix.get(suffix.rsplit("-", 1)[0]) if suffix else None
        snaps.append(
            {
                "uuid": fields["uuid"],
                "name": fields.get("name", ""),
                "description": fields.get("description", ""),
                "parent": parent.get("uuid") if parent else None,
                "suffix": suffix,
            }
        )
    return snaps, values.get("CurrentSnapshotUUID")


def human_vms(text: str) -> list[dict[str, Any]]:
    """``list -l vms``: one dict per VM block (a block starts at a ``Name:`` row at the left margin).

    Keys are the human labels (``UUID``, ``Memory size``, ``Number of CPUs``, ``State``, ``Firmware``,
    ``Guest OS``, ``NIC 1`` ...); ``controllers`` maps controller names to types and ``attachments``
    lists (controller, port, device, medium uuid, path) in both the 6.1 and the 7.0 layout.
    """
    vms: list[dict[str, Any]] = []
    ctl_by_index: dict[str, str] = {}
    current_ctl = ""
    in_description = False
    for line in text.splitlines():
        if line.startswith("Name:") and line[5:7] == "  ":
            vms.append({"controllers": {}, "attachments": []})
            ctl_by_index, current_ctl, in_description = {}, "", False
        if not vms:
            continue
        vm = vms[-1]
        if in_description:
            if _ROW.match(line):  # the next aligned row ends the description
                in_description = False
            else:
                vm["Description"] = (vm["Description"] + "\n" + line) if vm["Description"] else line
                continue
        if line == "Description:":
            vm["Description"], in_description = "", True
            continue
        attach = _V61_ATTACH.match(line)
        if attach:
            vm["attachments"].append(
                (attach.group(1), int(attach.group(2)), int(attach.group(3)), attach.group(5).lower(), attach.group(4))
            )
            continue
        ctl = _V70_CTL.match(line)
        if ctl:
            current_ctl = ctl.group(2)
            vm["controllers"][current_ctl] = ctl.group(3).strip()
            continue
        port = _V70_ATTACH.match(line)
        if port:
            vm["attachments"].append(
                (current_ctl, int(port.group(1)), int(port.group(2)), port.group(3).lower(), port.group(4))
            )
            continue
        row = _BLOCK_LINE.match(line)
        if not row:
            continue
        key, value = row.group(1).strip(), row.group(2).strip()
        named = re.match(r"^Storage Controller (Name|Type) \((\d+)\)$", key)
        if named:
            if named.group(1) == "Name":
                ctl_by_index[named.group(2)] = value
            elif named.group(2) in ctl_by_index:
                vm["controllers"][ctl_by_index[named.group(2)]] = value
            continue
        vm.setdefault(key, value)
    for vm in vms:
        vm.setdefault("Description", "")
    return vms


def guest_properties(text: str) -> dict[str, str]:
    """``guestproperty enumerate``: 6.1 ``Name: n, value: v, ...`` and 7.0 ``n = 'v' @ time`` lines."""
    out = {}
    for line in text.splitlines():
        match = _GUESTPROP_61.match(line) or _GUESTPROP_70.match(line.strip())
        if match:
            out[match.group(1)] = match.group(2)
    return out


def metrics_rows(text: str) -> list[tuple[str, str, str]]:
    """``metrics query``: (object, metric, value) rows; header, rule and unknown lines skipped."""
    rows = []
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match and match.group(1).strip() and not set(match.group(1)) <= {"-", " "}:
            rows.append((match.group(1).strip(), match.group(2), match.group(3).strip()))
    return rows
