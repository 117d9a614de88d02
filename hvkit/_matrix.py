"""Tables generated from the backends' declarations: the support matrix (capabilities, README and docs)
and the portability table (what every backend does with one call, docs/portability.md).

Every registered backend is picked up; one that is not installed here is left out of the tables.
"""

from __future__ import annotations

from typing import Any

import attrs

from . import _registry
from .capabilities import DESCRIPTIONS, Capability

__all__ = [
    "PORTABILITY_ROWS",
    "PortabilityRow",
    "backend_capabilities",
    "backend_portability",
    "matrix_markdown",
    "portability_markdown",
]


def _drivers() -> dict[str, Any]:
    """One entry per driver class (aliases folded), keyed by its module name: the class, or its ImportError."""
    seen: set[str] = set()
    result: dict[str, Any] = {}
    for kind, found in _registry.available().items():
        target = _registry.known()[kind].target
        if target in seen:
            continue
        seen.add(target)
        result[target.split(":", 1)[0].rsplit(".", 1)[-1]] = found  # hvkit.backends.vmware:... -> vmware
    return result


def backend_capabilities() -> dict[str, tuple[frozenset[Capability], dict[Capability, str]] | ImportError]:
    """One entry per driver class (aliases folded), keyed by its module name: capabilities and their notes."""
    return {
        name: found
        if isinstance(found, ImportError)
        else (frozenset(found.capabilities), dict(getattr(found, "capability_notes", {})))
        for name, found in _drivers().items()
    }


def matrix_markdown() -> str:
    """A Markdown table: one row per capability, one column per backend ('yes', 'yes*' with a note, '-')."""
    backends = {k: v for k, v in backend_capabilities().items() if not isinstance(v, ImportError)}
    kinds = sorted(backends)
    lines = ["| capability | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    notes: list[str] = []
    for cap in Capability:
        cells = []
        for kind in kinds:
            caps, cap_notes = backends[kind]
            if cap not in caps:
                cells.append("-")
            elif cap in cap_notes:
                text = f"{kind}: {cap_notes[cap]}"
                if text not in notes:
                    notes.append(text)
                cells.append(f"yes[^{notes.index(text) + 1}]")
            else:
                cells.append("yes")
        lines.append(f"| `{cap.value}` {DESCRIPTIONS[cap]} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"[^{i}]: {text}" for i, text in enumerate(notes, 1)]
    return "\n".join(lines).rstrip() + "\n"


@attrs.frozen
class PortabilityRow:
    """One portable call: what hvkit does with it by default, and the capability a backend needs for it."""

    key: str  # the key of Backend.portability_notes
    call: str
    default: str
    needs: tuple[Capability, ...] = ()
    missing: str = ""  # what a backend without ``needs`` does (default: Unsupported)


PORTABILITY_ROWS: tuple[PortabilityRow, ...] = (
    PortabilityRow(
        "vms.list",
        "`hv.vms.list()`",
        "every VM from one bulk read where the vendor has one: name, power state, CPUs, memory, host, IPs, "
        "template flag; `detail=True` adds disks and NICs (in bulk where the vendor allows)",
    ),
    PortabilityRow(
        "names.vm",
        "VM and clone names",
        "kept as given: any name hvkit takes (1-80 characters, no '/', '\\\\' or control characters)",
        (Capability.VM_CREATE,),
    ),
    PortabilityRow("names.snapshot", "snapshot names", "kept as given", (Capability.SNAPSHOT,)),
    PortabilityRow(
        "snapshots.create",
        "`hv.snapshots.create(vm, name)` (`memory=None`)",
        "a running VM's snapshot keeps its memory where the backend has `snapshot.memory` (a revert returns it "
        "running); a stopped VM's holds its disks",
        (Capability.SNAPSHOT,),
    ),
    PortabilityRow(
        "snapshots.create(memory=False)",
        "`hv.snapshots.create(vm, name, memory=False)` of a running VM",
        "a crash-consistent disk snapshot; a revert leaves the VM stopped",
        (Capability.SNAPSHOT,),
    ),
    PortabilityRow(
        "vms.clone(linked=True)",
        "`hv.vms.clone(vm, name, linked=True)`",
        "a new stopped VM sharing the source's disks copy-on-write, with the source's current state; the source "
        "may be running and have snapshots",
        (Capability.VM_LINKED_CLONE,),
    ),
    PortabilityRow(
        "images.linked",
        "`DiskSpec(image=name, linked=True)` in `hv.vms.create`",
        "the disk is a new copy-on-write volume over the image's volume (the image never changes; it cannot be "
        "deleted while linked disks use it); without `volume.linked`, `Unsupported` before anything is made "
        "(no silent full copy: `linked=False` asks for one)",
        (Capability.VOLUME_LINKED,),
    ),
    PortabilityRow(
        "snapshots.revert",
        "`hv.snapshots.revert(snap)` after a linked clone of the VM",
        "works; the clone does not change",
        (Capability.SNAPSHOT, Capability.VM_LINKED_CLONE),
    ),
    PortabilityRow(
        "vms.reconfigure",
        "`hv.vms.reconfigure(vm, cpus=..., memory_mib=...)` of a running VM",
        "changes CPUs and memory live",
        (Capability.VM_RECONFIGURE_LIVE,),
        "`InvalidState`: CPUs and memory change only while the VM is stopped",
    ),
    PortabilityRow(
        "vms.delete(keep_disks=True)",
        "`hv.vms.delete(vm, keep_disks=True)`",
        "keeps the disks as volumes",
        (Capability.VM_DELETE,),
    ),
)


def backend_portability() -> dict[str, tuple[frozenset[Capability], dict[str, str]]]:
    """Capabilities and portability notes of every installed driver class (aliases folded), by module name."""
    out: dict[str, tuple[frozenset[Capability], dict[str, str]]] = {}
    for name, found in _drivers().items():
        if isinstance(found, ImportError):
            continue
        notes = dict(getattr(found, "portability_notes", {}))
        unknown = sorted(set(notes) - {row.key for row in PORTABILITY_ROWS})
        if unknown:
            raise ValueError(f"{name}: portability_notes for unknown operations {unknown}")
        out[name] = (frozenset(found.capabilities), notes)
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def portability_markdown() -> str:
    """A Markdown table: one row per portable call, the default behaviour, then one column per backend."""
    backends = backend_portability()
    kinds = sorted(backends)
    lines = [
        "| call | hvkit's behaviour | " + " | ".join(kinds) + " |",
        "|---|---|" + "---|" * len(kinds),
    ]
    for row in PORTABILITY_ROWS:
        cells = []
        for kind in kinds:
            caps, notes = backends[kind]
            lacking = [c.value for c in row.needs if c not in caps]
            if lacking:
                cells.append(row.missing or f"`Unsupported` (no `{'`, `'.join(lacking)}`)")
            else:
                cells.append(notes.get(row.key, "as described" if notes else "(not declared)"))
        lines.append(f"| {row.call} | {_cell(row.default)} | " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
