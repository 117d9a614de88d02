"""What each hvkit template does on a Hyper-V host, step by step as its PowerShell does it.

Each handler mirrors one template (same cmdlet order, same checks, same output shape) and raises
:class:`PSError` with the category and FullyQualifiedErrorId the cmdlet raises on Windows.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import shutil
import time
import uuid
from typing import Any

from ._chains import checkpoint_disks, merge, own_files, prune, restore_disks
from ._output import PSError
from ._state import CONTROLLER, ENUMS, STATE, Adapter, Drive, HostState, Snapshot, VirtualMachine

__all__ = ["P", "cmdlet_class"]

P = dict[str, Any]
_CLASSES: dict[str, str] = {}
_MIB = 1024 * 1024
_STATE_NAMES = {number: name for name, number in STATE.items()}


def cmdlet_class(name: str) -> str:
    return _CLASSES.get(name, f"Microsoft.HyperV.PowerShell.Commands.{name.replace('-', '')}")


def _fail(category: str, error_id: str, message: str, target: Any) -> PSError:
    """The template's hvkFail (Write-Error -ErrorAction Stop)."""
    return PSError(
        message,
        category,
        error_id,
        activity="Write-Error",
        exception="Microsoft.PowerShell.Commands.WriteErrorException",
        target="" if target is None else str(target),
        target_type="String" if target is not None else "",
    )


def _state_error(cmdlet: str, vm: VirtualMachine, what: str = "change state") -> PSError:
    return PSError(
        f"'{vm.name}' failed to {what}.\r\nThe operation cannot be performed while the object is in its current state.",
        "InvalidOperation",
        f"InvalidState,{cmdlet_class(cmdlet)}",
        activity=cmdlet,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- projections (the template's hvkVhd / hvkVM) ---------------------------------------------------------
def _vhd(host: HostState, path: str) -> dict[str, Any]:
    try:
        v = host.vhd(path)
    except PSError:  # Get-VHD -ErrorAction SilentlyContinue
        return {
            "Path": path,
            "Size": 0,
            "FileSize": 0,
            "VhdFormat": 0,
            "VhdType": 0,
            "ParentPath": None,
            "Missing": True,
        }
    return {
        "Path": v.path,
        "Size": v.size,
        "FileSize": host.file_size(path),
        "VhdFormat": v.vhd_format,
        "VhdType": v.vhd_type,
        "ParentPath": v.parent,
    }


def _ips(vm: VirtualMachine, adapter: Adapter) -> list[str]:
    if vm.state != STATE["Running"] or not adapter.switch:
        return []
    digest = hashlib.sha256(adapter.mac.encode()).digest()
    return [
        f"192.168.{digest[0] % 200 + 20}.{digest[1] % 250 + 2}",
        f"fe80::215:5dff:fe{digest[2]:02x}:{digest[3]:02x}{digest[4]:02x}",
    ]


def _vm(host: HostState, vm: VirtualMachine | None) -> dict[str, Any]:
    assert vm is not None
    return {
        "Id": vm.id,
        "Name": vm.name,
        "State": vm.state,
        "StateName": _STATE_NAMES.get(vm.state, str(vm.state)),
        "Generation": vm.generation,
        "ProcessorCount": vm.cpus,
        "MemoryStartup": vm.memory,
        "Notes": vm.notes,
        "ComputerName": host.name,
        "Path": vm.path,
        "ParentSnapshotId": vm.current,
        "SecureBoot": vm.secure_boot if vm.generation == 2 else None,
        "CreationTime": vm.created,
        "Disks": [
            {
                "ControllerType": d.controller_type,
                "ControllerNumber": d.controller_number,
                "ControllerLocation": d.location,
                "Vhd": _vhd(host, d.path),
            }
            for d in vm.drives
        ],
        "Dvds": list(vm.dvds),
        "Nics": [
            {"Name": a.name, "MacAddress": a.mac, "SwitchName": a.switch, "IPAddresses": _ips(vm, a)}
            for a in vm.adapters
        ],
    }


def _get_vm(host: HostState, vm_id: Any) -> VirtualMachine:
    vm = host.vms.get(str(vm_id).lower()) if vm_id else None
    if vm is None:
        raise _fail(
            "ObjectNotFound",
            "hvkit.VMNotFound",
            "Hyper-V was unable to find a virtual machine with the given ID.",
            vm_id,
        )
    return vm


def _switch(host: HostState, name: str) -> dict[str, Any]:
    for sw in host.switches:
        if sw["Name"].lower() == str(name).lower():
            return sw
    raise PSError(
        f'Hyper-V was unable to find a virtual switch with name "{name}".',
        "InvalidArgument",
        "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVMSwitch",
        activity="Get-VMSwitch",
        target=str(name),
        target_type="String",
    )


# -- templates --------------------------------------------------------------------------------------------
def inventory(host: HostState, p: P) -> Any:
    pools = []
    for path in dict.fromkeys([host.vhd_path, *(p.get("Pools") or [])]):
        if not path:
            continue
        exists = host.exists(path)
        usage = shutil.disk_usage(host.root) if exists else None
        pools.append(
            {
                "Path": path,
                "Exists": exists,
                "TotalSize": usage.total if usage else None,
                "AvailableFreeSpace": usage.free if usage else None,
            }
        )
    return {
        "Host": {
            "ComputerName": host.name,
            "FullyQualifiedDomainName": host.fqdn,
            "LogicalProcessorCount": host.cpus,
            "MemoryCapacity": host.memory,
            "VirtualHardDiskPath": host.vhd_path,
            "VirtualMachinePath": host.vm_path,
            "VirtualMachineMigrationEnabled": host.migration_enabled,
            "VirtualMachineMigrationAuthenticationType": host.migration_auth,
        },
        "Switches": [dict(sw) for sw in host.switches],
        "Pools": pools,
        "VMs": [_vm(host, vm) for vm in host.vms.values()] if p.get("WithVMs") else [],
    }


def vm_get(host: HostState, p: P) -> Any:
    vm = host.vms.get(str(p.get("Id") or "").lower())
    if vm is None and p.get("Name"):
        named = host.vms_named(p["Name"])
        vm = named[0] if named else None
    if vm is None:
        raise _fail(
            "ObjectNotFound",
            "hvkit.VMNotFound",
            "Hyper-V was unable to find a virtual machine with the given name or ID.",
            p.get("Name"),
        )
    return _vm(host, vm)


def _check_memory(cmdlet: str, value: int) -> None:
    if value < 32 * _MIB or value % (2 * _MIB):
        raise PSError(
            "Failed to modify device 'Memory'.\r\nInvalid startup memory amount assigned. The minimum amount of memory "
            "is 32 MB and it must be a multiple of 2 MB.",
            "InvalidArgument",
            f"InvalidParameter,{cmdlet_class(cmdlet)}",
            activity=cmdlet,
        )


def _check_cpus(host: HostState, cmdlet: str, count: int) -> None:
    if count < 1 or count > host.cpus:
        raise PSError(
            f"Failed to modify device 'Processor'.\r\nThe number of virtual processors ({count}) is not valid: this "
            f"host has {host.cpus} logical processors.",
            "InvalidArgument",
            f"InvalidParameter,{cmdlet_class(cmdlet)}",
            activity=cmdlet,
        )


def _add_drive(host: HostState, vm: VirtualMachine, controller: Any, path: str) -> None:
    ctype = CONTROLLER[str(controller).upper()] if not isinstance(controller, int) else controller
    if vm.generation == 2 and ctype == CONTROLLER["IDE"]:
        raise PSError(
            "The operation failed because no IDE controller exists on a Generation 2 virtual machine.",
            "ObjectNotFound",
            "ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.AddVMHardDiskDrive",
            activity="Add-VMHardDiskDrive",
        )
    host.vhd(path)  # the file must be a VHD
    if path.lower() in host.attached():
        raise PSError(
            f"Failed to add device 'Virtual Hard Disk'.\r\nThe file '{path}' is in use by another virtual machine.",
            "ResourceBusy",
            "ResourceBusy,Microsoft.HyperV.PowerShell.Commands.AddVMHardDiskDrive",
            activity="Add-VMHardDiskDrive",
        )
    used = [(d.controller_number, d.location) for d in vm.drives if d.controller_type == ctype]
    slots = [(n, loc) for n in range(2 if ctype == 0 else 4) for loc in range(2 if ctype == 0 else 64)]
    free = next(s for s in slots if s not in used)
    vm.drives.append(Drive(ctype, free[0], free[1], path))


def _new_mac() -> str:
    return "00155D" + uuid.uuid4().hex[:6].upper()


def vm_create(host: HostState, p: P) -> Any:
    name = p["Name"]
    if host.vms_named(name):
        raise _fail("ResourceExists", "hvkit.AlreadyExists", "A virtual machine with this name already exists.", name)
    for nic in p.get("Nics") or []:
        _switch(host, nic["Switch"])
    if p.get("SeedIso") and host.exists(p["SeedPath"]):
        raise _fail("ResourceExists", "hvkit.AlreadyExists", "The seed ISO file exists.", p["SeedPath"])
    for d in p.get("Disks") or []:
        if not host.exists(d["Dir"]):
            raise _fail("ObjectNotFound", "hvkit.PoolNotFound", "The storage path does not exist.", d["Dir"])
        if not d["SizeBytes"] and not host.exists(d["Path"]):
            raise _fail("ObjectNotFound", "hvkit.VolumeNotFound", "The virtual hard disk does not exist.", d["Path"])
        if d["SizeBytes"] and host.exists(d["Path"]):
            raise _fail(
                "ResourceExists", "hvkit.AlreadyExists", "A virtual hard disk with this name already exists.", d["Path"]
            )
    vm: VirtualMachine | None = None
    made: list[str] = []
    try:
        _check_memory("New-VM", int(p["MemoryBytes"]))
        vm_id = str(uuid.uuid4())
        vm = VirtualMachine(
            vm_id,
            name,
            int(p["Generation"]),
            1,
            int(p["MemoryBytes"]),
            p.get("VMPath") or host.vm_path,
            host.name,
            _now(),
        )
        vm.adapters.append(Adapter(str(uuid.uuid4()), "Network Adapter", "000000000000", None))
        host.vms[vm_id] = vm
        _check_cpus(host, "Set-VMProcessor", int(p["Cpus"]))
        vm.cpus = int(p["Cpus"])
        vm.adapters.clear()  # Get-VMNetworkAdapter | Remove-VMNetworkAdapter
        for d in p.get("Disks") or []:
            if d["SizeBytes"]:
                host.new_vhd(d["Path"], int(d["SizeBytes"]))
                made.append(d["Path"])
            _add_drive(host, vm, d["Controller"], d["Path"])
        for nic in p.get("Nics") or []:
            sw = _switch(host, nic["Switch"])
            vm.adapters.append(Adapter(str(uuid.uuid4()), "Network Adapter", nic.get("Mac") or _new_mac(), sw["Name"]))
        if vm.generation == 2:
            vm.secure_boot = ENUMS["OnOffState"]["On" if p.get("SecureBoot") else "Off"]
            if p.get("SecureBoot"):
                vm.secure_boot_template = p.get("SecureBootTemplate") or "MicrosoftWindows"
        vm.notes = p.get("Notes") or ""
        if p.get("SeedIso"):
            host.local(p["SeedPath"]).write_bytes(base64.b64decode(p["SeedIso"]))
            made.append(p["SeedPath"])
            vm.dvds.append(p["SeedPath"])
    except Exception:
        if vm is not None:
            host.vms.pop(vm.id, None)
        for f in made:
            if host.exists(f):
                host.remove_file(f)
        raise
    return _vm(host, vm)


def vm_delete(host: HostState, p: P) -> Any:
    vm = _get_vm(host, p["Id"])
    snapshot_disks = [path for snap in vm.snapshots.values() for path in snap.config.get("disks", [])]
    files = own_files(host, [d.path for d in vm.drives] + snapshot_disks) + list(vm.dvds)
    if vm.state not in (STATE["Off"], STATE["Saved"]):  # Remove-VM -Force turns a running VM off first
        vm.state = STATE["Off"]
    del host.vms[vm.id]
    if not p.get("KeepDisks"):
        for f in files:
            if f and host.exists(f):
                host.remove_file(f)
    return {"Id": p["Id"], "Removed": files}


_TRANSITIONS: dict[str, tuple[str, tuple[str, ...], str]] = {
    # action: (cmdlet, states it acts from, resulting state)
    "start": ("Start-VM", ("Off", "Saved"), "Running"),
    "stop": ("Stop-VM", ("Running",), "Off"),
    "turnoff": ("Stop-VM", ("Running", "Paused", "Saved"), "Off"),
    "save": ("Save-VM", ("Running", "Paused"), "Saved"),
    "pause": ("Suspend-VM", ("Running",), "Paused"),
    "resume": ("Resume-VM", ("Paused",), "Running"),
    "reset": ("Restart-VM", ("Running",), "Running"),
    "reboot": ("Restart-VM", ("Running",), "Running"),
}


def vm_power(host: HostState, p: P) -> Any:
    vm = _get_vm(host, p["Id"])
    action = p.get("Action")
    if action not in _TRANSITIONS:
        raise _fail("InvalidArgument", "hvkit.BadAction", "Unknown power action.", action)
    cmdlet, sources, target = _TRANSITIONS[action]
    if vm.state not in {STATE[s] for s in sources}:
        raise _state_error(cmdlet, vm)
    if action == "stop" and vm.shutdown_seconds:  # Stop-VM waits for the guest to shut down
        time.sleep(vm.shutdown_seconds)
    if target == "Running" and vm.state != STATE["Running"]:
        vm.started = _now()
    vm.state = STATE[target]
    return _vm(host, vm)


def vm_reconfigure(host: HostState, p: P) -> Any:
    vm = _get_vm(host, p["Id"])
    if p.get("Cpus"):
        if vm.state != STATE["Off"]:
            raise _state_error("Set-VMProcessor", vm, "modify device 'Processor'")
        _check_cpus(host, "Set-VMProcessor", int(p["Cpus"]))
        vm.cpus = int(p["Cpus"])
    if p.get("MemoryBytes"):
        _check_memory("Set-VMMemory", int(p["MemoryBytes"]))
        vm.memory = int(p["MemoryBytes"])  # runtime memory resize: Windows Server 2016 and later
    return _vm(host, vm)


def _snapshot(s: Snapshot) -> dict[str, Any]:
    return {
        "Id": s.id,
        "Name": s.name,
        "ParentSnapshotId": s.parent,
        "CreationTime": s.created,
        "SnapshotType": s.type,
        "State": s.state,
        "Notes": "",
    }


def snapshot_list(host: HostState, p: P) -> Any:
    out = []
    for vm_id in p.get("Ids") or []:
        vm = _get_vm(host, vm_id)
        out.append({"Id": vm.id, "Current": vm.current, "Snapshots": [_snapshot(s) for s in vm.snapshots.values()]})
    return {"VMs": out}


def snapshot_create(host: HostState, p: P) -> Any:
    vm = _get_vm(host, p["Id"])
    if any(s.name.lower() == str(p["Name"]).lower() for s in vm.snapshots.values()):
        raise _fail("ResourceExists", "hvkit.AlreadyExists", "A checkpoint with this name already exists.", p["Name"])
    vm.checkpoint_type = ENUMS["CheckpointType"]["Standard" if p.get("Memory") else "Production"]
    memory = (
        vm.state in (STATE["Running"], STATE["Paused"]) and vm.checkpoint_type == ENUMS["CheckpointType"]["Standard"]
    )
    snap = Snapshot(
        str(uuid.uuid4()),
        str(p["Name"]),
        vm.current,
        _now(),
        ENUMS["SnapshotType"]["Standard"],
        STATE["Saved"] if memory else STATE["Off"],
        {"cpus": vm.cpus, "memory": vm.memory, "disks": checkpoint_disks(host, vm)},
    )
    vm.snapshots[snap.id] = snap
    vm.current = snap.id
    return _snapshot(snap)


def _find_snapshot(host: HostState, snap_id: Any) -> tuple[VirtualMachine, Snapshot]:
    for vm in host.vms.values():
        snap = vm.snapshots.get(str(snap_id).lower())
        if snap is not None:
            return vm, snap
    raise PSError(
        "Unable to find a snapshot matching the given criteria.",
        "ObjectNotFound",
        "ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.GetVMSnapshot",
        activity="Get-VMSnapshot",
    )


def snapshot_revert(host: HostState, p: P) -> Any:
    _get_vm(host, p["Id"])
    vm, snap = _find_snapshot(host, p["SnapshotId"])
    vm.cpus, vm.memory = snap.config["cpus"], snap.config["memory"]
    restore_disks(host, vm, snap.config.get("disks", []))
    vm.state = snap.state
    vm.current = snap.id
    if vm.state == STATE["Saved"] and p.get("Resume"):
        vm.state = STATE["Running"]
        vm.started = _now()
    return _vm(host, vm)


def snapshot_delete(host: HostState, p: P) -> Any:
    _get_vm(host, p["Id"])
    vm, snap = _find_snapshot(host, p["SnapshotId"])
    doomed = {snap.id}
    if p.get("Children"):
        grew = True
        while grew:
            more = {s.id for s in vm.snapshots.values() if s.parent in doomed} - doomed
            grew = bool(more)
            doomed |= more
    for s in vm.snapshots.values():
        if s.parent == snap.id and s.id not in doomed:
            s.parent = snap.parent
    current = vm.current
    while current in doomed:
        current = vm.snapshots[current].parent  # type: ignore[index]
    released = [path for sid in doomed for path in vm.snapshots[sid].config.get("disks", [])]
    for sid in doomed:
        del vm.snapshots[sid]
    vm.current = current
    prune(host, released)  # the files of discarded states nothing reads any more
    merge(host, vm)  # the rest: differencing files no checkpoint needs fold into their parents
    return {"Id": p["SnapshotId"]}
