"""libvirt snapshots: internal qcow2 snapshots, with or without memory."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import libvirt

from ...errors import InvalidState, Unsupported
from ...models import (
    VM,
    Snapshot,
)
from . import _domxml, _overlays
from ._session import (
    KvmSession,
)


def list_snapshots(session: KvmSession, vm: VM) -> list[Snapshot]:
    dom = session.domain(vm)
    result = []
    for snap in dom.listAllSnapshots(0):
        root = ET.fromstring(snap.getXMLDesc(0))
        created = root.findtext("creationTime")
        state = root.findtext("state") or ""
        memory = root.find("memory")
        has_memory = (
            memory.get("snapshot") in ("internal", "external") if memory is not None else state in ("running", "paused")
        )
        result.append(
            Snapshot(
                id=snap.getName(),
                name=snap.getName(),
                vm=vm.id,
                parent=root.findtext("parent/name"),
                created=dt.datetime.fromtimestamp(int(created), dt.UTC) if created else None,
                description=root.findtext("description") or "",
                memory=has_memory,
                current=bool(snap.isCurrent(0)),
            )
        )
    return result


def create_snapshot(session: KvmSession, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Snapshot:
    if quiesce:
        raise Unsupported(
            session.kind, "snapshots.create(quiesce=True)", "libvirt quiesces only external disk-only snapshots"
        )
    dom = session.domain(vm)
    if dom.isActive() and not memory:
        raise InvalidState(
            f"VM {vm.name!r} is running: QEMU's internal snapshots of a running VM keep its memory "
            "(pass memory=True, or stop the VM)"
        )
    dom.snapshotCreateXML(_domxml.snapshot_xml(name, description), 0)
    return next(s for s in list_snapshots(session, vm) if s.name == name)


def revert_snapshot(session: KvmSession, vm: VM, snapshot: Snapshot) -> None:
    """Revert; a snapshot inside an image linked clones share is first moved onto a copy (see _overlays)."""
    from ._uri import is_local_uri

    local = session.driver == "qemu" and is_local_uri(session._uri)
    _overlays.revert_unshared(session.conn, session.domain(vm), snapshot.id, local=local)


def delete_snapshot(session: KvmSession, vm: VM, snapshot: Snapshot, children: bool) -> None:
    dom = session.domain(vm)
    snap = dom.snapshotLookupByName(snapshot.id, 0)
    snap.delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN if children else 0)
