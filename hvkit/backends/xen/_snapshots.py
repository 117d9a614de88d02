"""Snapshots: VM.snapshot / VM.checkpoint (memory), VM.revert, the tree through snapshot_of and parent."""

from __future__ import annotations

from typing import Any

from ...driver import Task
from ...errors import AlreadyExists, NotFound
from ...models import VM, PowerState, Snapshot
from . import _convert as cv
from ._session import XapiSession
from ._vms import destroy_with_disks, ref_of

__all__ = ["create", "delete", "list_many", "list_one", "revert"]


def list_one(s: XapiSession, vm: VM) -> list[Snapshot]:
    ref = ref_of(s, vm)
    vm_rec = s.call("VM.get_record", ref)
    recs = {r: s.call("VM.get_record", r) for r in vm_rec["snapshots"]}
    return _tree(recs, vm_rec)


def _tree(recs: dict[str, Any], vm_rec: dict[str, Any]) -> list[Snapshot]:
    """The snapshots parents first (depth in the tree, then time taken)."""
    uuids = {r: rec["uuid"] for r, rec in recs.items()}
    snaps = [cv.snapshot(r, rec, vm_rec, uuids) for r, rec in recs.items()]
    parents = {sn.id: sn.parent for sn in snaps}

    def depth(snap_id: str | None) -> int:
        seen = 0
        while snap_id is not None and seen <= len(parents):
            snap_id, seen = parents.get(snap_id), seen + 1
        return seen

    return sorted(snaps, key=lambda sn: (depth(sn.parent), sn.created is None, sn.created, sn.name))


def list_many(s: XapiSession, vms: list[VM]) -> dict[str, list[Snapshot]]:
    """Snapshots of many VMs from one read of every VM record."""
    records = s.call("VM.get_all_records")
    by_uuid = {rec["uuid"]: (ref, rec) for ref, rec in records.items()}
    out: dict[str, list[Snapshot]] = {}
    for vm in vms:
        found = by_uuid.get(vm.id)
        if found is None:
            out[vm.id] = []
            continue
        _ref, rec = found
        out[vm.id] = _tree({r: records[r] for r in rec["snapshots"] if r in records}, rec)
    return out


def create(s: XapiSession, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Task:
    ref = ref_of(s, vm)
    if any(sn.name == name for sn in list_one(s, vm)):
        raise AlreadyExists(f"VM {vm.name!r} has a snapshot named {name!r} already")
    args: tuple[Any, ...]
    if memory and vm.power_state is PowerState.RUNNING:
        method, args = "VM.checkpoint", (ref, name)
    elif quiesce:
        method, args = "VM.snapshot_with_quiesce", (ref, name)
    else:
        method, args = "VM.snapshot", (ref, name, [])

    def finish(snap_ref: Any) -> Snapshot:
        snap = str(snap_ref)
        if description:
            s.call("VM.set_name_description", snap, description)
        rec = s.call("VM.get_record", snap)
        vm_rec = s.call("VM.get_record", ref)
        parent = rec["parent"]
        uuids = {parent: s.call("VM.get_uuid", parent)} if parent != cv.NULL else {}
        return cv.snapshot(snap, rec, vm_rec, uuids)

    return s.task("snapshots.create", vm.name, method, *args, result=finish)


def _snap_ref(s: XapiSession, snapshot: Snapshot) -> str:
    try:
        return str(s.call("VM.get_by_uuid", snapshot.id))
    except NotFound:
        raise NotFound(f"no snapshot {snapshot.name!r} ({snapshot.id})") from None


def revert(s: XapiSession, vm: VM, snapshot: Snapshot) -> str:
    """Revert; a snapshot with memory leaves the VM suspended, so it is resumed as it was."""
    ref = _snap_ref(s, snapshot)
    s.run("VM.revert", ref)
    vm_ref = ref_of(s, vm)
    if snapshot.memory and s.call("VM.get_power_state", vm_ref) == "Suspended":
        s.run("VM.resume", vm_ref, False, False)
    return vm.id


def delete(s: XapiSession, vm: VM, snapshot: Snapshot, children: bool) -> None:
    ref = _snap_ref(s, snapshot)
    if children:
        for child in list(s.call("VM.get_children", ref)):
            if s.call("VM.get_is_a_snapshot", child):
                rec = s.call("VM.get_record", child)
                delete(s, vm, Snapshot(id=rec["uuid"], name=rec["name_label"], vm=vm.id), True)
    destroy_with_disks(s, ref)
