"""vSphere VMs: list (one round trip), create, delete, power, reconfigure, templates."""

from __future__ import annotations

import contextlib
from typing import Any

from ...driver import Task, TaskInfo, wait_for
from ...errors import (
    AlreadyExists,
    InvalidSpec,
    InvalidState,
    NotFound,
    Timeout,
)
from ...models import (
    VM,
    Firmware,
    PowerState,
    TaskState,
    VMSpec,
)
from ._datastore_files import split_datastore_path
from ._devices import GUEST_IDS, build_devices, guest_family, read_disks, read_nics
from ._errors import translating
from ._property_collector import Props
from ._session import (
    POWER,
    VM_BRIEF_PROPS,
    VM_LIST_PROPS,
    VM_PROPS,
    VmwareSession,
    escape,
    unescape,
    vim,
    vmodl,
)


def list_vms(session: VmwareSession, detail: bool = False) -> list[VM]:
    """One PropertyCollector read. Default: VM_LIST_PROPS (no devices); ``detail=True`` (or the option
    ``vm_list=full``): VM_PROPS, devices included, with the names of their datastores and networks."""
    mode = str(session.options.option("vm_list", "default"))
    if mode not in ("default", "full", "brief"):
        raise InvalidSpec(f"option vm_list must be 'default', 'full' or 'brief', got {mode!r}")
    detail = detail or mode == "full"
    props: dict[Any, list[str]] = {vim.VirtualMachine: VM_PROPS, vim.HostSystem: ["name"]}
    if detail:  # names for the disks' datastores and the NICs' networks
        props.update(
            {vim.Datastore: ["name"], vim.Network: ["name"], vim.dvs.DistributedVirtualPortgroup: ["name", "key"]}
        )
    elif mode == "brief":
        props[vim.VirtualMachine] = VM_BRIEF_PROPS
    else:
        props.update({vim.VirtualMachine: VM_LIST_PROPS, vim.Datastore: ["name"]})
    found = session.pc.collect(session.dc, props)
    names = session.split_names([(o, p) for o, p in found if not isinstance(o, vim.VirtualMachine)])
    return [_vm(session, o, p, names, detail) for o, p in found if isinstance(o, vim.VirtualMachine)]


def get_vm(session: VmwareSession, ref: str) -> VM:
    if not isinstance(ref, str) or not ref:
        raise InvalidSpec(f"expected a VM id or name, got {ref!r}")
    if not any(c.isspace() for c in ref):
        try:
            props = session.pc.read(session.ref(vim.VirtualMachine, ref), VM_PROPS)
        except (vmodl.fault.ManagedObjectNotFound, vmodl.fault.InvalidArgument, vmodl.fault.InvalidType):
            props = {}
        except Exception as exc:  # a name that is no valid managed object id
            if "ManagedObjectNotFound" not in type(exc).__name__ and "NotFound" not in str(type(exc)):
                raise
            props = {}
        if props:
            return _vm(session, session.ref(vim.VirtualMachine, ref), props, session.names())
    by_name = None  # by name, from the listing (no devices): then that VM is read in full
    for listed in list_vms(session):
        if ref in (listed.id, listed.uuid):
            return listed if listed.id == ref else get_vm(session, listed.id)
        if listed.name == ref:
            by_name = listed
    if by_name is None:
        raise NotFound(f"no VM {ref!r} on this {session.kind} hypervisor")
    return get_vm(session, by_name.id) if by_name.id != ref else by_name


def _vm(
    session: VmwareSession,
    obj: Any,
    props: Props,
    names: tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, str]],
    detail: bool = True,
) -> VM:
    hosts, stores, nets, keys = names
    devices = props.get("config.hardware.device") or []
    host_ref = props.get("runtime.host")
    ips: list[str] = []
    for nic in props.get("guest.net") or []:
        for ip in nic.ipAddress or []:
            if ip not in ips:
                ips.append(ip)
    primary = props.get("guest.ipAddress")
    if primary and primary not in ips:
        ips.insert(0, primary)
    pool = props.get("resourcePool")
    return VM(
        id=obj._moId,
        name=unescape(str(props.get("name", obj._moId))),
        power_state=POWER.get(str(props.get("runtime.powerState")), PowerState.UNKNOWN),
        cpus=int(props.get("config.hardware.numCPU", 0) or 0),
        memory_mib=int(props.get("config.hardware.memoryMB", 0) or 0),
        uuid=props.get("config.uuid"),
        disks=read_disks(devices, stores),  # type: ignore[arg-type]
        nics=read_nics(devices, nets, keys),  # type: ignore[arg-type]
        host=hosts.get(host_ref._moId, host_ref._moId) if host_ref is not None else None,
        firmware=Firmware.UEFI if props.get("config.firmware") == "efi" else Firmware.BIOS,
        guest_os=guest_family(props.get("config.guestId")),
        notes=str(props.get("config.annotation") or ""),
        ip_addresses=ips,  # type: ignore[arg-type]
        template=bool(props.get("config.template", False)),
        extra={
            "moref": obj._moId,
            "host_id": host_ref._moId if host_ref is not None else None,
            "instance_uuid": props.get("config.instanceUuid"),
            "guest_id": props.get("config.guestId"),
            "tools_status": props.get("guest.toolsStatus"),
            "tools_running": props.get("guest.toolsRunningStatus"),
            "vmx_path": props.get("config.files.vmPathName"),
            "resource_pool": pool._moId if pool is not None else None,
            "datastores": tuple(stores.get(d._moId, d._moId) for d in props.get("datastore") or []),
            "detail": detail,
        },
    )


def create_vm(session: VmwareSession, spec: VMSpec) -> Task:
    pool, host = session.placement(spec.host)
    stores = {p["name"]: o for o, p in session.pc.collect(session.dc, {vim.Datastore: ["name"]})}

    def datastore_of(name: str) -> Any:
        if name not in stores:
            raise NotFound(f"no datastore {name!r}")
        return stores[name]

    first_pool = next((d.pool for d in spec.disks if d.pool), None)
    if first_pool is None:
        vol = next((d.volume for d in spec.disks if d.volume), None)
        first_pool = split_datastore_path(vol)[0] if vol else None
    if first_pool is None:
        if not stores:
            raise NotFound("the datacenter has no datastore to keep the VM's files")
        first_pool = sorted(stores)[0]
    config = vim.vm.ConfigSpec(
        name=escape(spec.name),
        numCPUs=spec.cpus,
        memoryMB=spec.memory_mib,
        guestId=str(spec.extra.get("guest_id") or GUEST_IDS[spec.guest_os]),
        firmware="efi" if spec.firmware is Firmware.UEFI else "bios",
        annotation=spec.notes,
        files=vim.vm.FileInfo(vmPathName=f"[{first_pool}]"),
        deviceChange=build_devices(
            spec.disks,
            spec.nics,
            datastore_of,
            session.volume_path,
            session.network_backing() if spec.nics else lambda n: None,
        ),
    )
    folder = session.dc_folders["vmFolder"]
    task = folder.CreateVM_Task(config=config, pool=pool, host=host)
    return one_of_its_name(session, session.task(task, "vm.create", spec.name), spec.name)


def one_of_its_name(session: VmwareSession, task: Task, name: str) -> Task:
    """Follow a create or clone ``task``; then make sure its VM is the only one called ``name``."""
    return Task.in_thread(task.operation, name, lambda: task, lambda t: claim_name(session, t.wait(), name))


def claim_name(session: VmwareSession, moid: str, name: str) -> str:
    """One name, one VM (vcsim, and folders other than the VM folder, take duplicates): among the VMs of
    one name the oldest (lowest moref number) wins; a newer one, just made by this call, is destroyed
    again (by its moref, nothing else) and AlreadyExists raised."""

    def age(ref: str) -> tuple[int, str]:
        digits = ref.rsplit("-", 1)[-1]
        return (int(digits) if digits.isdigit() else 0, ref)

    found = session.pc.collect(session.dc, {vim.VirtualMachine: ["name"]})
    named = [o._moId for o, p in found if p.get("name") == escape(name)]
    older = sorted((m for m in named if m != moid and age(m) < age(moid)), key=age)
    if older:
        session.wait(session.ref(vim.VirtualMachine, moid).Destroy_Task(), "vm.create clean-up", name)
        raise AlreadyExists(f"a VM named {name!r} exists already ({older[0]}); the one made meanwhile was removed")
    return moid


def delete_vm(session: VmwareSession, vm: VM, keep_disks: bool) -> Any:
    obj = session.ref(vim.VirtualMachine, vm.id)
    if not keep_disks:
        return session.task(obj.Destroy_Task(), "vm.delete", vm.name, lambda _: None)
    # Keep the disks: detach them, unregister the VM, then delete its other files one by one
    # (Destroy_Task may remove the VM's whole folder, disks detached or not).
    props = session.pc.read(obj, ["config.hardware.device", "config.files.vmPathName"])
    disks = [d for d in props.get("config.hardware.device") or [] if isinstance(d, vim.vm.device.VirtualDisk)]
    kept = {str(getattr(d.backing, "fileName", "") or "") for d in disks}
    if disks:
        detach = [vim.vm.device.VirtualDeviceSpec(operation="remove", device=d) for d in disks]
        session.wait(obj.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=detach)), "vm.delete", vm.name)
    vmx = str(props.get("config.files.vmPathName") or "")
    obj.UnregisterVM()
    if not vmx:
        return None
    ds_name, rel = split_datastore_path(vmx)
    folder = f"[{ds_name}] {rel.rsplit('/', 1)[0]}" if "/" in rel else f"[{ds_name}]"
    if "/" not in rel:
        session.delete_file(vmx, vm.name)
        return None
    stems = tuple(k[: -len(".vmdk")] for k in kept if k.endswith(".vmdk"))
    for path in session.folder_files(ds_name, folder):
        if path in kept or (path.endswith(".vmdk") and path.startswith(stems)):
            continue
        session.delete_file(path, vm.name)
    return None


def start_vm(session: VmwareSession, vm: VM) -> Task:
    return session.task(session.ref(vim.VirtualMachine, vm.id).PowerOnVM_Task(), "vm.start", vm.name, lambda _: vm.id)


def stop_vm(session: VmwareSession, vm: VM, force: bool, timeout: float) -> Any:
    obj = session.ref(vim.VirtualMachine, vm.id)
    if force or vm.power_state is PowerState.SUSPENDED:
        return session.task(obj.PowerOffVM_Task(), "vm.stop", vm.name, lambda _: vm.id)
    try:
        obj.ShutdownGuest()
    except vim.fault.ToolsUnavailable as exc:
        raise InvalidState(
            f"VM {vm.name!r} has no running VMware Tools, which a graceful shutdown needs; stop it with force=True"
        ) from exc
    if not _wait_power(session, obj, "poweredOff", timeout):
        raise Timeout(f"VM {vm.name!r} did not shut down within {timeout:g} s (stop it with force=True)")
    return vm.id


def _wait_power(session: VmwareSession, obj: Any, state: str, timeout: float) -> bool:
    """Wait until the VM reaches ``state`` (False after ``timeout``): the one waiting helper, with
    WaitForUpdatesEx on runtime.powerState as its blocking wait for the next change."""
    collector = session.content.propertyCollector.CreatePropertyCollector()
    try:
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=obj, skip=False)],
            propSet=[
                vmodl.query.PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=["runtime.powerState"])
            ],
        )
        collector.CreateFilter(spec, partialUpdates=False)
        version = ""
        waiting, reached = TaskInfo(TaskState.RUNNING), TaskInfo(TaskState.SUCCESS, 100)

        def next_change(seconds: float) -> TaskInfo:
            nonlocal version
            wait = max(1, min(int(seconds) + 1, int(min(session.options.timeout / 2, 10.0))))
            options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=wait)
            update = collector.WaitForUpdatesEx(version, options)
            if update is None:
                return waiting
            version = update.version
            changes = [c for fu in update.filterSet or [] for oc in fu.objectSet or [] for c in oc.changeSet or []]
            hit = any(c.name == "runtime.powerState" and str(c.val) == state for c in changes)
            return reached if hit else waiting

        try:
            wait_for(lambda: waiting, timeout=timeout, what=f"power state {state}", wait_change=next_change,
                     max_interval=10.0)  # fmt: skip
        except Timeout:
            return False
        return True
    finally:
        with contextlib.suppress(Exception):
            collector.DestroyPropertyCollector()


def reboot_vm(session: VmwareSession, vm: VM, force: bool) -> Any:
    obj = session.ref(vim.VirtualMachine, vm.id)
    if force:
        return session.task(obj.ResetVM_Task(), "vm.reboot", vm.name, lambda _: vm.id)
    if vm.extra.get("tools_running") != "guestToolsRunning":
        raise InvalidState(
            f"VM {vm.name!r} has no running VMware Tools, which a graceful reboot needs; "
            "reboot it with force=True (a reset)"
        )
    obj.RebootGuest()
    return vm.id


def suspend_vm(session: VmwareSession, vm: VM) -> Task:
    return session.task(session.ref(vim.VirtualMachine, vm.id).SuspendVM_Task(), "vm.suspend", vm.name, lambda _: vm.id)


def reconfigure_vm(session: VmwareSession, vm: VM, cpus: int | None, memory_mib: int | None) -> Task:
    spec = vim.vm.ConfigSpec()
    if cpus is not None:
        spec.numCPUs = cpus
    if memory_mib is not None:
        spec.memoryMB = memory_mib
    return session.task(
        session.ref(vim.VirtualMachine, vm.id).ReconfigVM_Task(spec=spec), "vm.reconfigure", vm.name, lambda _: vm.id
    )


def mark_template(session: VmwareSession, vm: VM) -> None:
    """Turn a stopped VM into a template (vCenter); clone it with ``hv.vms.clone``."""
    with translating():
        session.ref(vim.VirtualMachine, vm.id).MarkAsTemplate()
