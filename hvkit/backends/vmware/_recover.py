"""Restart a VM of a failed ESXi host on another host of the vCenter: unregister the orphaned VM, register its
``.vmx`` on the target host (the VM's files stay where they are, on a datastore the target mounts), power
it on there.

What stays and what changes: the name, the files, the BIOS UUID (``config.uuid``) and the instance UUID
(``config.instanceUuid``) stay (vSphere reads them from the ``.vmx``; where they come back different
they are set again before the power-on); the managed object id (moref) changes, since a registration
makes a new VirtualMachine object, and with it what vCenter keeps outside the ``.vmx`` (custom
attributes, permissions, alarms, statistics, DRS/HA overrides). A failure after the registration
unregisters the VM this call registered (by its moref) and names the ``.vmx`` to register by hand.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ...errors import BackendError, HvkitError, InvalidSpec, InvalidState, NotFound, Unsupported
from ...models import VM
from . import _vms
from ._datastore_files import split_datastore_path
from ._errors import translating
from ._session import VmwareSession, unescape, vim

__all__ = ["recover_vm"]

_VM_PROPS = ["name", "config.files.vmPathName", "config.uuid", "config.instanceUuid", "config.template",
             "runtime.host", "resourcePool", "parent"]  # fmt: skip
_HOST_PROPS = ["name", "parent", "datastore", "runtime.connectionState", "runtime.inMaintenanceMode"]


def _target(session: VmwareSession, host: str) -> tuple[Any, dict[str, Any]]:
    for obj, props in session.pc.collect(session.dc, {vim.HostSystem: _HOST_PROPS}):
        if host in (obj._moId, props.get("name")):
            return obj, props
    raise NotFound(f"no host {host!r}")


def _pool_on(session: VmwareSession, vm_pool: Any, compute: Any) -> Any:
    """The VM's own resource pool when it belongs to the target's compute resource (cluster or standalone
    host), else that compute resource's root pool."""
    if vm_pool is not None:
        owner = session.pc.read(vm_pool, ["owner"]).get("owner")
        if owner is not None and owner._moId == compute._moId:
            return vm_pool
    return session.pc.read(compute, ["resourcePool"])["resourcePool"]


def recover_vm(session: VmwareSession, vm: VM, host: str) -> VM:
    """Start ``vm``, whose host is not connected to vCenter, on ``host`` (see the module's text)."""
    if not isinstance(host, str) or not host:
        raise InvalidSpec(f"expected a host id or name, got {host!r}")
    if not session.is_vcenter:
        raise Unsupported(session.kind, "vms.recover", "moving a VM's registration to another host needs vCenter")
    with translating():
        obj = session.ref(vim.VirtualMachine, vm.id)
        props = session.pc.read(obj, _VM_PROPS)
        if not props:
            raise NotFound(f"no VM {vm.id!r}")
        name = unescape(str(props.get("name", vm.id)))
        if props.get("config.template"):
            raise InvalidState(f"{name!r} is a template; templates are not restarted")
        old_host = props.get("runtime.host")
        if old_host is not None:
            state = session.pc.read(old_host, ["name", "runtime.connectionState"])
            if state.get("runtime.connectionState", "connected") == "connected":
                raise InvalidState(f"VM {name!r}: its host {state.get('name')!r} is connected; migrate the VM instead")
        target, tprops = _target(session, host)
        if old_host is not None and target._moId == old_host._moId:
            raise InvalidSpec(f"VM {name!r}: {host!r} is the host that failed")
        if tprops.get("runtime.connectionState") != "connected" or tprops.get("runtime.inMaintenanceMode"):
            raise InvalidState(f"host {tprops.get('name')!r} is not connected or is in maintenance mode")
        vmx = str(props.get("config.files.vmPathName") or "")
        store, _ = split_datastore_path(vmx)
        mounted = {o._moId for o in tprops.get("datastore") or []}
        if not any(o._moId in mounted for o, p in session.pc.collect(session.dc, {vim.Datastore: ["name"]})
                   if p.get("name") == store):  # fmt: skip
            raise InvalidState(f"host {tprops.get('name')!r} does not mount datastore {store!r}, which holds {vmx}")
        pool = _pool_on(session, props.get("resourcePool"), tprops["parent"])
        folder = props.get("parent") or session.dc_folders["vmFolder"]
        raw_name = str(props.get("name"))

        obj.UnregisterVM()  # vCenter forgets the orphan; its files stay
        try:
            new_id = str(
                session.wait(
                    folder.RegisterVM_Task(path=vmx, name=raw_name, asTemplate=False, pool=pool, host=target),
                    "vm.recover",
                    name,
                )
            )
        except HvkitError as exc:
            raise BackendError(
                f"VM {name!r} was unregistered from its failed host, but registering {vmx} on "
                f"{tprops.get('name')!r} failed ({exc}); register that file again to get the VM back"
            ) from exc
        try:
            _keep_identity(session, new_id, props, name)
            session.wait(session.ref(vim.VirtualMachine, new_id).PowerOnVM_Task(host=target), "vm.recover", name)
        except BaseException as exc:
            with contextlib.suppress(Exception):  # only the VM this call registered, by its moref
                made = session.ref(vim.VirtualMachine, new_id)
                if session.pc.read(made, ["runtime.powerState"]).get("runtime.powerState") == "poweredOn":
                    session.wait(made.PowerOffVM_Task(), "vm.recover clean-up", name)
                made.UnregisterVM()
            if isinstance(exc, HvkitError):
                raise BackendError(
                    f"VM {name!r}: registered on {tprops.get('name')!r} but did not start ({exc}); that "
                    f"registration was undone, the files stay: register {vmx} again to get the VM back"
                ) from exc
            raise
    return _vms.get_vm(session, new_id)


def _keep_identity(session: VmwareSession, new_id: str, old: dict[str, Any], name: str) -> None:
    """Set the BIOS and instance UUIDs the VM had, where the registration gave it others."""
    made = session.ref(vim.VirtualMachine, new_id)
    now = session.pc.read(made, ["config.uuid", "config.instanceUuid"])
    spec = vim.vm.ConfigSpec()
    changed = False
    for prop, field in (("config.uuid", "uuid"), ("config.instanceUuid", "instanceUuid")):
        if old.get(prop) and now.get(prop) != old.get(prop):
            setattr(spec, field, old[prop])
            changed = True
    if changed:
        session.wait(made.ReconfigVM_Task(spec=spec), "vm.recover", name)
