"""Snapshots: ``snapshot <vm> take|restore|delete|list --machinereadable``, the tree from the key suffixes."""

from __future__ import annotations

import re

from hvkit import errors
from hvkit.models import VM, PowerState, Snapshot

from . import _linked, _parse
from ._errors import VBoxManageError
from ._session import Session

__all__ = ["create_snapshot", "delete_snapshot", "list_snapshots", "revert_snapshot"]

NO_SNAPSHOTS = "does not have any snapshots"
LINKED_BASE = "the linked clone"  # in the description of a base hvkit takes; only marked ones are hidden


def list_snapshots(session: Session, vm: VM) -> list[Snapshot]:
    """One ``snapshot list --machinereadable``; a VM without snapshots exits with 1 and says so on stdout.

    Linked clone bases hvkit took are left out (by UUID, marked on the VM; see ``_linked``), their children
    shown as children of the nearest listed ancestor."""
    status, out, err = session.run_status(["snapshot", vm.id, "list", "--machinereadable"])
    if status != 0:
        if NO_SNAPSHOTS in out or NO_SNAPSHOTS in err:
            return []
        raise VBoxManageError("snapshot", status, err or out)
    snaps, current = _parse.snapshot_tree(_parse.machinereadable(out))
    hidden = _linked.marked_bases(session, vm.id) if any(LINKED_BASE in s["description"] for s in snaps) else set()
    parents = {s["uuid"]: s["parent"] for s in snaps}

    def visible_parent(parent: str | None) -> str | None:
        while parent is not None and parent.lower() in hidden:
            parent = parents.get(parent)
        return parent

    return [
        Snapshot(
            id=s["uuid"],
            name=s["name"],
            vm=vm.id,
            parent=visible_parent(s["parent"]),
            description=s["description"],
            current=s["uuid"] == current,
        )
        for s in snaps
        if s["uuid"].lower() not in hidden
    ]


def create_snapshot(session: Session, vm: VM, name: str, description: str, memory: bool) -> Snapshot:
    """A running VM's snapshot always holds its memory in VirtualBox (``--live``: without pausing it)."""
    running = vm.power_state in (PowerState.RUNNING, PowerState.PAUSED)
    if not memory and running:
        raise errors.InvalidState(
            f"VirtualBox snapshots of the running VM {vm.name!r} always keep its memory: pass memory=True "
            "or stop it first"
        )
    args = ["snapshot", vm.id, "take", name]
    if description:
        args += ["--description", description]
    if running:
        args.append("--live")
    out = session.run(args, vm=vm.id)
    found = re.search(r"UUID: ([0-9a-fA-F-]{36})", out)
    snap_id = found.group(1).lower() if found else ""
    for snap in list_snapshots(session, vm):
        if snap.id == snap_id or (not snap_id and snap.name == name and snap.current):
            return Snapshot(
                id=snap.id,
                name=snap.name,
                vm=vm.id,
                parent=snap.parent,
                description=snap.description,
                memory=running,
                current=True,
            )
    raise errors.BackendError(f"snapshot {name!r} of VM {vm.name!r} was taken but is not listed")


def revert_snapshot(session: Session, vm: VM, snapshot: Snapshot) -> None:
    """Power off if needed, restore; a snapshot with memory leaves the VM saved, so it is started (resumed)."""
    with session.serial(vm.id):
        if vm.power_state in (PowerState.RUNNING, PowerState.PAUSED):
            session.run(["controlvm", vm.id, "poweroff"], vm=vm.id)
        session.run(["snapshot", vm.id, "restore", snapshot.id], vm=vm.id)
        state = _parse.machinereadable(session.run(["showvminfo", vm.id, "--machinereadable"])).get("VMState")
        if state == "saved":
            session.run(["startvm", vm.id, "--type", "headless"], vm=vm.id)


def delete_snapshot(session: Session, vm: VM, snapshot: Snapshot, children: bool) -> None:
    """Delete one snapshot (its children move up), or with ``children`` its subtree, leaves first."""
    with session.serial(vm.id):
        doomed = [snapshot.id]
        if children:
            tree = list_snapshots(session, vm)
            kids: dict[str | None, list[str]] = {}
            for snap in tree:
                kids.setdefault(snap.parent, []).append(snap.id)
            doomed, todo = [], [snapshot.id]
            while todo:
                current = todo.pop()
                doomed.append(current)
                todo.extend(kids.get(current, []))
            doomed.reverse()  # children before their parents
        for snap_id in doomed:
            session.run(["snapshot", vm.id, "delete", snap_id], vm=vm.id)
