"""What hvkit's clone, storage, move and metrics templates do on the host (see :mod:`._ops` for the conventions)."""

from __future__ import annotations

import shutil
import uuid
from typing import Any

from ...driver import qemu_img
from ._chains import move_files, own_files
from ._ops import _MIB, P, _fail, _get_vm, _now, _vhd, _vm
from ._output import PSError
from ._state import MIGRATION_AUTH, STATE, Adapter, Drive, HostState, VirtualMachine

__all__ = [
    "host_metrics",
    "snapshot_export",
    "vm_clone",
    "vm_metrics",
    "vm_migrate",
    "volume_create",
    "volume_delete",
    "volume_export",
    "volume_list",
]


# a VM's worker process holds its disks open in these states (Saved and Off close them)
_OPEN_STATES = frozenset(STATE[name] for name in ("Running", "Paused", "Starting", "Stopping", "Saving", "Pausing"))


def vm_migrate(host: HostState, p: P) -> Any:
    vm = _get_vm(host, p["Id"])
    if p.get("DestinationHost"):
        return _move_to_host(host, vm, str(p["DestinationHost"]), p.get("DestinationStoragePath"))
    dest = p["DestinationStoragePath"]
    if not host.exists(dest):
        raise _fail("ObjectNotFound", "hvkit.PoolNotFound", "The storage path does not exist.", dest)
    move_files(host, vm, dest)
    vm.path = dest
    return _vm(host, vm)


def _move_failed(host: HostState, vm: VirtualMachine, reason: str, category: str = "ConnectionError") -> PSError:
    return PSError(
        f"Virtual machine migration operation for '{vm.name}' failed at migration source '{host.name}'.\r\n{reason}",
        category,
        "Unspecified,Microsoft.HyperV.PowerShell.Commands.MoveVM",
        activity="Move-VM",
    )


def _move_to_host(host: HostState, vm: VirtualMachine, name: str, storage: str | None) -> Any:
    """Move-VM -DestinationHost: the VM leaves this host for a peer, running on if it ran (a live move)."""
    peer = host.peers.get(name.lower().split(".")[0])
    if peer is None:
        raise _move_failed(
            host, vm, f"Failed to establish a connection with host '{name}': No such host is known. (0x80072AF9)."
        )
    if not host.migration_enabled or not peer.migration_enabled:
        which = host if not host.migration_enabled else peer
        raise _move_failed(
            host,
            vm,
            f"The Virtual Machine Management Service on host '{which.name}' is not configured to accept "
            "migrations (VirtualMachineMigrationEnabled is off).",
            "InvalidOperation",
        )
    # the session is NTLM (the endpoint offers no CredSSP): the source host may reach the peer on the user's
    # behalf only through Kerberos constrained delegation, which the Kerberos migration auth type stands for
    if host.migration_auth != MIGRATION_AUTH["Kerberos"]:
        raise _move_failed(
            host,
            vm,
            f"Failed to establish a connection with host '{name}': No credentials are available in the "
            "security package (0x8009030E).",
        )
    if storage is None:  # the destination must reach the VM's files where they are (shared storage)
        unreachable = [d.path for d in vm.drives if not peer.exists(d.path)]
        if unreachable:
            raise _move_failed(
                host,
                vm,
                f"The virtual machine's storage '{unreachable[0]}' is not accessible from host '{peer.name}'; "
                "move it with -IncludeStorage.",
                "InvalidOperation",
            )
    else:
        move_files(host, vm, storage, to=peer)
        vm.path = storage
    del host.vms[vm.id]
    vm.host = peer.name
    peer.vms[vm.id] = vm
    return {"Id": vm.id, "ComputerName": peer.name, "State": vm.state, "StateName": _state_name(vm.state)}


def _state_name(code: int) -> str:
    return next((k for k, v in STATE.items() if v == code), "Other")


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
    """The VHD files of each folder, checkpoints' differencing disks (``.avhdx``, beside their parents) included;
    each with the VM whose drive uses it and the VMs whose disks or checkpoints read it down their chains."""
    attached = {path: vm.id for path, vm in host.attached().items()}
    read_by: dict[str, list[str]] = {}
    for vm in host.vms.values():
        starts = [d.path for d in vm.drives] + [f for s in vm.snapshots.values() for f in s.config.get("disks", [])]
        for path in _chain(host, starts):
            read_by.setdefault(path, []).append(vm.id)
    out = []
    for directory in p.get("Dirs") or []:
        if not host.exists(directory):
            continue
        for f in sorted(host.local(directory).iterdir()):
            if f.is_file() and f.suffix.lower() in (".vhdx", ".vhd", ".avhdx", ".avhd"):
                path = f"{directory.rstrip(chr(92))}\\{f.name}"
                rec = _vhd(host, path)
                rec["Dir"] = directory
                rec["AttachedTo"] = attached.get(path.lower())
                rec["ReadBy"] = read_by.get(path.lower(), [])
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
    in_use = _chain(
        host,
        [d.path for vm in host.vms.values() for d in vm.drives]
        + [f for vm in host.vms.values() for s in vm.snapshots.values() for f in s.config.get("disks", [])],
    )
    if p["Path"].lower() in in_use:
        raise _fail(
            "ResourceBusy",
            "hvkit.InUse",
            "The virtual hard disk is in use by a virtual machine or one of its checkpoints.",
            p["Path"],
        )
    host.remove_file(p["Path"])
    return {"Path": p["Path"]}


def volume_export(host: HostState, p: P) -> Any:
    """Convert-VHD -VHDType Dynamic: a differencing chain merged into one new VHDX. A file a running VM writes (its
    drive's, not a parent's) is open in the VM's worker process, which lets no one else read it."""
    if host.exists(p["Destination"]):
        raise _fail("ResourceExists", "hvkit.AlreadyExists", "The destination file exists.", p["Destination"])
    user = host.attached().get(str(p["Path"]).lower())
    if user is not None and user.state in _OPEN_STATES:
        raise PSError(
            f"Failed to convert the virtual disk.\r\nThe system failed to convert '{p['Path']}': The process cannot "
            "access the file because it is being used by another process. (0x80070020).",
            "ResourceBusy",
            "ConvertVirtualHardDisk,Microsoft.Vhd.PowerShell.Cmdlets.ConvertVHD",
            activity="Convert-VHD",
            target=p["Path"],
            target_type="String",
        )
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


def snapshot_export(host: HostState, p: P) -> Any:
    """A disk as a checkpoint holds it: that checkpoint's file for the volume (the file itself, or the one in the
    slot of the VM's drive that uses the volume now); a differencing file merged into a new VHDX (Convert-VHD)."""
    vm = _get_vm(host, p["Id"])
    snap = vm.snapshots.get(str(p["SnapshotId"]).lower())
    if snap is None:
        raise _fail(
            "ObjectNotFound",
            "hvkit.SnapshotNotFound",
            "Hyper-V was unable to find a checkpoint with the given ID.",
            p["SnapshotId"],
        )
    held = list(snap.config.get("disks", []))  # in the order of the VM's drives, as Checkpoint-VM froze them
    asked = str(p["Path"]).lower()
    path = next((f for f in held if f.lower() == asked), None)
    if path is None:
        slots = [i for i, d in enumerate(vm.drives) if d.path.lower() == asked and i < len(held)]
        path = held[slots[0]] if slots else None
    if path is None:
        raise _fail(
            "ObjectNotFound", "hvkit.VolumeNotFound", "The checkpoint holds no such virtual hard disk.", p["Path"]
        )
    source = _vhd(host, path)
    if source["ParentPath"]:
        out = volume_export(host, {"Path": path, "Destination": p["Destination"]})
        out["Merged"] = True
    else:
        out = source
        out["Merged"] = False
    out["Source"] = path
    return out


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


def vm_clone(host: HostState, p: P) -> Any:
    src = _get_vm(host, p["Id"])
    if host.vms_named(p["Name"]):
        raise _fail(
            "ResourceExists", "hvkit.AlreadyExists", "A virtual machine with this name already exists.", p["Name"]
        )
    vhd_dir = host.local(p["VhdDir"])
    if vhd_dir.exists():
        raise PSError(
            f"An item with the specified name {p['VhdDir']} already exists.",
            "ResourceExists",
            "DirectoryExist,Microsoft.PowerShell.Commands.NewItemCommand",
            activity="New-Item",
        )
    vhd_dir.mkdir(parents=True)
    new_id = str(uuid.uuid4())
    vm = VirtualMachine(
        new_id,
        src.name if not p.get("Linked") else p["Name"],
        src.generation,
        src.cpus,
        src.memory,
        p.get("VMPath") or host.vm_path,
        host.name,
        _now(),
    )
    try:
        vm.secure_boot, vm.secure_boot_template, vm.notes = src.secure_boot, src.secure_boot_template, src.notes
        for i, d in enumerate(src.drives):
            if p.get("Linked"):
                child = f"{p['VhdDir']}\\disk{i}.vhdx"
                host.new_vhd(child, 0, parent=d.path)
            else:  # Export-VM, then Import-VM -Copy -GenerateNewId copies each disk into VhdDestinationPath
                root = own_files(host, [d.path])[-1]  # the disk's .vhdx under its checkpoint files
                child = f"{p['VhdDir']}\\{root.rsplit(chr(92), 1)[-1]}"
                if d.path == root:
                    shutil.copyfile(host.local(d.path), host.local(child))
                else:  # the state of now, as one file (this model's clones carry no checkpoints)
                    qemu_img(
                        "convert",
                        "-O",
                        "vhdx",
                        "-o",
                        "subformat=dynamic",
                        str(host.local(d.path)),
                        str(host.local(child)),
                    )
                host.vhd(child)
            vm.drives.append(Drive(d.controller_type, d.controller_number, d.location, child))
        macs = list(p.get("Macs") or [])
        for k, a in enumerate(src.adapters):
            vm.adapters.append(Adapter(str(uuid.uuid4()), a.name, macs[k] if k < len(macs) else a.mac, a.switch))
        vm.name = p["Name"]  # Rename-VM
        host.vms[new_id] = vm
    except Exception:
        host.vms.pop(new_id, None)
        shutil.rmtree(vhd_dir, ignore_errors=True)
        raise
    return _vm(host, vm)


def _chain(host: HostState, paths: list[str]) -> set[str]:
    """The files ``paths`` read, down every parent (lower-cased)."""
    out: set[str] = set()
    for path in paths:
        current: str | None = path
        while current and current.lower() not in out:
            out.add(current.lower())
            try:
                current = host.vhd(current).parent
            except PSError:
                break
    return out
