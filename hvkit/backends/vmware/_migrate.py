"""vSphere clones, relocation (host and/or datastore) and OVF import."""

from __future__ import annotations

import contextlib
from typing import Any

from ...driver import Task
from ...errors import (
    InvalidState,
    Unsupported,
)
from ...models import (
    VM,
    PowerState,
)
from . import _vms
from ._errors import translating
from ._session import (
    LINKED_CLONE_BASE,
    VmwareSession,
    escape,
    vim,
)


def _relocate_spec(session: VmwareSession, vm: VM, host: str | None, pool: str | None) -> Any:
    spec = vim.vm.RelocateSpec()
    if host is not None:
        rpool, host_obj = session.placement(host)
        spec.host = host_obj
        spec.pool = rpool
    if pool is not None:
        spec.datastore = session.datastore(pool)
    return spec


def clone_vm(session: VmwareSession, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> Any:
    if not session.is_vcenter:
        raise Unsupported(session.kind, "vms.clone", "cloning needs vCenter")
    obj = session.ref(vim.VirtualMachine, vm.id)
    location = _relocate_spec(session, vm, host, pool)
    if location.pool is None:
        current = session.pc.read(obj, ["resourcePool", "runtime.host"])
        if current.get("resourcePool") is not None:
            location.pool = current["resourcePool"]
        else:  # a template has no resource pool: use its host's
            host_ref = current.get("runtime.host")
            location.pool, _ = session.placement(host_ref._moId if host_ref is not None else None)
    spec = vim.vm.CloneSpec(location=location, powerOn=False, template=False)
    made_snapshot = None
    if linked:
        snap = session.pc.read(obj, ["snapshot"]).get("snapshot")
        current_snap = getattr(snap, "currentSnapshot", None)
        if current_snap is None:
            # A linked clone shares a snapshot's disks: take one (it stays, as the clone needs it).
            made_snapshot = session.wait(
                obj.CreateSnapshot_Task(
                    name=LINKED_CLONE_BASE, description="base of linked clones", memory=False, quiesce=False
                ),
                "vm.clone",
                vm.name,
            )
            current_snap = session.ref(vim.vm.Snapshot, made_snapshot)
        spec.snapshot = current_snap
        location.diskMoveType = "createNewChildDiskBacking"
    if made_snapshot is None:
        return _vms.one_of_its_name(
            session,
            session.task(
                obj.CloneVM_Task(folder=session.dc_folders["vmFolder"], name=escape(name), spec=spec),
                "vm.clone",
                name,
            ),
            name,
        )
    try:  # follow the clone here, to remove the snapshot taken for it if the clone fails
        task = session.task(
            obj.CloneVM_Task(folder=session.dc_folders["vmFolder"], name=escape(name), spec=spec), "vm.clone", name
        )
        return _vms.claim_name(session, task.wait(float(session.options.option("task_timeout", 1800.0))), name)
    except BaseException:
        with contextlib.suppress(Exception):
            snap = session.ref(vim.vm.Snapshot, made_snapshot)
            session.wait(snap.RemoveSnapshot_Task(removeChildren=False), "vm.clone clean-up", vm.name)
        raise


def migrate_vm(session: VmwareSession, vm: VM, host: str | None, pool: str | None, live: bool) -> Task:
    if not session.is_vcenter:
        raise Unsupported(session.kind, "vms.migrate", "relocation needs vCenter")
    if not live and vm.power_state is PowerState.RUNNING:
        raise InvalidState(f"VM {vm.name!r} is running; a cold migration needs it stopped (or pass live=True)")
    spec = _relocate_spec(session, vm, host, pool)
    task = session.ref(vim.VirtualMachine, vm.id).RelocateVM_Task(spec=spec, priority="defaultPriority")
    return session.task(task, "vm.migrate", vm.name, lambda _: vm.id)


def import_ovf(
    session: VmwareSession,
    source: str,
    name: str,
    *,
    pool: str | None = None,
    network: str | None = None,
    host: str | None = None,
) -> str:
    """Import an OVF (with its disks beside it) or an OVA through an HttpNfcLease; return the VM id."""
    from ._ovf import import_ovf

    with translating():
        vm_id: str = import_ovf(session, source, name, pool=pool, network=network, host=host)
    return vm_id
