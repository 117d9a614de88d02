"""What hvkit's storage, move and metrics templates do on the host (see :mod:`._ops` for the conventions)."""

from __future__ import annotations

import shutil
from typing import Any

from ...driver import qemu_img
from ._ops import _MIB, P, _fail, _get_vm, _now, _vhd, _vm
from ._output import PSError
from ._state import STATE, HostState

__all__ = ["host_metrics", "vm_metrics", "vm_migrate", "volume_create", "volume_delete", "volume_export", "volume_list"]


def vm_migrate(host: HostState, p: P) -> Any:
    vm = _get_vm(host, p["Id"])
    if p.get("DestinationHost"):
        raise PSError(
            f"Virtual machine migration operation for '{vm.name}' failed at migration source '{host.name}'.\r\n"
            f"Failed to establish a connection with host '{p['DestinationHost']}': No credentials are available in the "
            "security package (0x8009030E).",
            "ConnectionError",
            "Unspecified,Microsoft.HyperV.PowerShell.Commands.MoveVM",
            activity="Move-VM",
        )
    dest = p["DestinationStoragePath"]
    if not host.exists(dest):
        raise _fail("ObjectNotFound", "hvkit.PoolNotFound", "The storage path does not exist.", dest)
    moves = [(d, f"{dest.rstrip(chr(92))}\\{d.path.rsplit(chr(92), 1)[-1]}") for d in vm.drives]
    for _, new in moves:
        if host.exists(new):
            raise PSError(
                f"The file '{new}' already exists.",
                "ResourceExists",
                "ResourceExists,Microsoft.HyperV.PowerShell.Commands.MoveVMStorage",
                activity="Move-VMStorage",
            )
    for d, new in moves:
        shutil.move(host.local(d.path), host.local(new))
        host.vhds.pop(d.path.lower(), None)
        d.path = new
        host.vhd(new)
    vm.path = dest
    return _vm(host, vm)


def vm_metrics(host: HostState, p: P) -> Any:
    out = []
    for vm_id in p.get("Ids") or []:
        vm = _get_vm(host, vm_id)
        vm.metering = True
        running = vm.state == STATE["Running"]
        uptime = (_now() - vm.started).total_seconds() if running and vm.started else 0.0
        out.append(
            {
                "Id": vm.id,
                "CPUUsage": 3 if running else 0,
                "MemoryAssigned": vm.memory if running else 0,
                "Uptime": uptime,
                "AvgCPU": 120 if running else 0,
                "AvgRAM": vm.memory // _MIB if running else 0,
                "DiskRead": 0,
                "DiskWritten": 0,
                "NetIn": 0,
                "NetOut": 0,
            }
        )
    return {"VMs": out}


def volume_list(host: HostState, p: P) -> Any:
    attached = {path: vm.id for path, vm in ((k, v) for k, v in host.attached().items())}
    out = []
    for directory in p.get("Dirs") or []:
        if not host.exists(directory):
            continue
        for f in sorted(host.local(directory).iterdir()):
            if f.is_file() and f.suffix.lower() in (".vhdx", ".vhd"):
                path = f"{directory.rstrip(chr(92))}\\{f.name}"
                rec = _vhd(host, path)
                rec["Dir"] = directory
                rec["AttachedTo"] = attached.get(path.lower())
                out.append(rec)
    return {"Volumes": out}


def volume_create(host: HostState, p: P) -> Any:
    if not host.exists(p["Dir"]):
        raise _fail("ObjectNotFound", "hvkit.PoolNotFound", "The storage path does not exist.", p["Dir"])
    if host.exists(p["Path"]):
        raise _fail(
            "ResourceExists", "hvkit.AlreadyExists", "A virtual hard disk with this name already exists.", p["Path"]
        )
    host.new_vhd(p["Path"], int(p["SizeBytes"]))
    return _vhd(host, p["Path"])


def volume_delete(host: HostState, p: P) -> Any:
    if not host.exists(p["Path"]):
        raise _fail("ObjectNotFound", "hvkit.VolumeNotFound", "The virtual hard disk does not exist.", p["Path"])
    if p["Path"].lower() in host.attached():
        raise _fail("ResourceBusy", "hvkit.InUse", "The virtual hard disk is attached to a virtual machine.", p["Path"])
    host.remove_file(p["Path"])
    return {"Path": p["Path"]}


def volume_export(host: HostState, p: P) -> Any:
    """Convert-VHD -VHDType Dynamic: a differencing chain merged into one new VHDX."""
    if host.exists(p["Destination"]):
        raise _fail("ResourceExists", "hvkit.AlreadyExists", "The destination file exists.", p["Destination"])
    source = host.vhd(p["Path"])
    qemu_img(
        "convert",
        "-O",
        "vhdx",
        "-o",
        "subformat=dynamic",
        str(host.local(p["Path"])),
        str(host.local(p["Destination"])),
    )
    host.vhd(p["Destination"])
    del source
    return _vhd(host, p["Destination"])


def host_metrics(host: HostState, p: P) -> Any:
    """Get-Counter's processor time and Win32_OperatingSystem's memory (KB), as the running VMs load the host."""
    running = [vm for vm in host.vms.values() if vm.state == STATE["Running"]]
    used = 4 * 1024**3 + sum(vm.memory for vm in running)
    return {
        "ComputerName": host.name,
        "CpuPercent": min(100.0, 2.5 + 1.5 * len(running)),
        "TotalKB": host.memory // 1024,
        "FreeKB": max(0, host.memory - used) // 1024,
    }
