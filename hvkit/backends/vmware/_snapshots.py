"""vSphere snapshots: the tree of each VM, create, revert, delete."""

from __future__ import annotations

from ...driver import Task
from ...models import (
    VM,
    Snapshot,
)
from ._session import (
    VmwareSession,
    snapshot_tree,
    vim,
)


def list_snapshots(session: VmwareSession, vm: VM) -> list[Snapshot]:
    info = session.pc.read(session.ref(vim.VirtualMachine, vm.id), ["snapshot"]).get("snapshot")
    return snapshot_tree(vm.id, info)


def list_snapshots_many(session: VmwareSession, vms: list[VM]) -> dict[str, list[Snapshot]]:
    """Every VM's snapshot tree in one PropertyCollector round trip."""
    objs = [session.ref(vim.VirtualMachine, vm.id) for vm in vms]
    found = {obj._moId: props.get("snapshot") for obj, props in session.pc.read_many(objs, ["snapshot"])}
    return {vm.id: snapshot_tree(vm.id, found.get(vm.id)) for vm in vms}


def create_snapshot(session: VmwareSession, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Task:
    obj = session.ref(vim.VirtualMachine, vm.id)
    task = obj.CreateSnapshot_Task(name=name, description=description, memory=memory, quiesce=quiesce)
    return session.task(task, "snapshot.create", vm.name, lambda _: None)


def revert_snapshot(session: VmwareSession, vm: VM, snapshot: Snapshot) -> Task:
    snap = session.ref(vim.vm.Snapshot, snapshot.id)
    return session.task(snap.RevertToSnapshot_Task(), "snapshot.revert", vm.name, lambda _: None)


def delete_snapshot(session: VmwareSession, vm: VM, snapshot: Snapshot, children: bool) -> Task:
    snap = session.ref(vim.vm.Snapshot, snapshot.id)
    return session.task(
        snap.RemoveSnapshot_Task(removeChildren=children, consolidate=True),
        "snapshot.delete",
        vm.name,
        lambda _: None,
    )
