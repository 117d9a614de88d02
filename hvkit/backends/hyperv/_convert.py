"""The templates' JSON documents as hvkit models."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from ...models import (
    VM,
    Disk,
    DiskBus,
    DiskFormat,
    Firmware,
    Host,
    Network,
    Nic,
    PowerState,
    Snapshot,
    StoragePool,
    Volume,
)

__all__ = ["date", "host", "mac", "network", "pool", "snapshot", "vm", "volume"]

MiB = 1024 * 1024
# Microsoft.HyperV.PowerShell.VMState (numbers: Windows PowerShell 5.1's ConvertTo-Json writes enums as numbers)
_POWER = {
    2: PowerState.RUNNING,
    3: PowerState.STOPPED,
    4: PowerState.STOPPING,
    6: PowerState.SUSPENDED,
    9: PowerState.PAUSED,
    10: PowerState.STARTING,
    11: PowerState.RUNNING,
    32773: PowerState.STOPPING,
    32776: PowerState.RUNNING,
    32777: PowerState.RUNNING,
    32779: PowerState.SUSPENDED,
    32780: PowerState.STOPPING,
    32781: PowerState.STOPPING,
    32782: PowerState.RUNNING,
}
# by name first: numbers above 32782 differ between builds (Hibernated and ComponentServicing are newer)
_POWER_BY_NAME = {
    "Running": PowerState.RUNNING,
    "Off": PowerState.STOPPED,
    "Stopping": PowerState.STOPPING,
    "Saved": PowerState.SUSPENDED,
    "Paused": PowerState.PAUSED,
    "Starting": PowerState.STARTING,
    "Reset": PowerState.RUNNING,
    "Saving": PowerState.STOPPING,
    "Pausing": PowerState.RUNNING,
    "Resuming": PowerState.RUNNING,
    "FastSaved": PowerState.SUSPENDED,
    "FastSaving": PowerState.STOPPING,
    "ForceShutdown": PowerState.STOPPING,
    "ForceReboot": PowerState.RUNNING,
    "Hibernated": PowerState.SUSPENDED,
}
_SWITCH_TYPES = {0: "private", 1: "internal", 2: "external"}
_DIFFERENCING = 4  # Microsoft.Vhd.PowerShell.VhdType
_DATE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$")


def date(value: Any) -> dt.datetime | None:
    """``\\/Date(ms)\\/`` (5.1) or an ISO date (7.x) as an aware datetime."""
    if not isinstance(value, str):
        return None
    match = _DATE.match(value)
    if match:
        return dt.datetime.fromtimestamp(int(match.group(1)) / 1000, tz=dt.UTC)
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def mac(value: str | None) -> str:
    """``00155D0A0B0C`` as ``00:15:5d:0a:0b:0c``."""
    text = (value or "").replace("-", "").replace(":", "").lower()
    return ":".join(text[i : i + 2] for i in range(0, 12, 2)) if len(text) == 12 else text


def vhd_format(path: str, code: Any) -> DiskFormat:
    if code == 2 or path.lower().endswith((".vhd", ".avhd")):
        return DiskFormat.VHD
    return DiskFormat.VHDX


def directory(path: str) -> str:
    return path.rsplit("\\", 1)[0] if "\\" in path else path


def power_state(rec: dict[str, Any]) -> PowerState:
    """The VM's state from its name (``RunningCritical`` is Running), else from its number."""
    name = str(rec.get("StateName") or "")
    base = name[: -len("Critical")] if name.endswith("Critical") else name
    if base in _POWER_BY_NAME:
        return _POWER_BY_NAME[base]
    return _POWER.get(int(rec.get("State") or 0), PowerState.UNKNOWN)


def vm(rec: dict[str, Any], pool_of: Callable[[str], str | None]) -> VM:
    disks = []
    for d in rec.get("Disks") or []:
        vhd = d.get("Vhd") or {}
        path = vhd.get("Path") or ""
        bus = DiskBus.IDE if d.get("ControllerType") == 0 else DiskBus.SCSI
        disks.append(
            Disk(
                name=f"{bus.value}{d.get('ControllerNumber', 0)}:{d.get('ControllerLocation', 0)}",
                size_bytes=int(vhd.get("Size") or 0),
                format=vhd_format(path, vhd.get("VhdFormat")),
                bus=bus,
                pool=pool_of(path) if path else None,
                volume=path or None,
                path=path or None,
            )
        )
    nics = [
        Nic(mac=mac(n.get("MacAddress")), network=n.get("SwitchName"), name=n.get("Name"))
        for n in rec.get("Nics") or []
    ]
    ips = [ip for n in rec.get("Nics") or [] for ip in (n.get("IPAddresses") or [])]
    return VM(
        id=rec["Id"],
        name=rec["Name"],
        power_state=power_state(rec),
        cpus=int(rec.get("ProcessorCount") or 0),
        memory_mib=int(rec.get("MemoryStartup") or 0) // MiB,
        uuid=rec["Id"],
        disks=disks,
        nics=nics,
        host=rec.get("ComputerName"),
        firmware=Firmware.UEFI if rec.get("Generation") == 2 else Firmware.BIOS,
        notes=rec.get("Notes") or "",
        ip_addresses=ips,
        extra={
            "generation": rec.get("Generation"),
            "secure_boot": rec.get("SecureBoot") == 0 if rec.get("SecureBoot") is not None else None,
            "path": rec.get("Path"),
            "dvds": list(rec.get("Dvds") or []),
            "created": date(rec.get("CreationTime")),
            "current_snapshot": rec.get("ParentSnapshotId"),
            "detail": "full",
        },
    )


def host(rec: dict[str, Any]) -> Host:
    threads = int(rec.get("LogicalProcessorCount") or 0)
    return Host(
        id=rec["ComputerName"],
        name=rec["ComputerName"],
        cpu_sockets=1,  # Get-VMHost does not say; hvkit reports logical processors
        cpu_cores=threads,
        cpu_threads=threads,
        memory_mib=int(rec.get("MemoryCapacity") or 0) // MiB,
        hypervisor_kind="hyperv",
        extra={
            "fqdn": rec.get("FullyQualifiedDomainName"),
            "vm_path": rec.get("VirtualMachinePath"),
            "vhd_path": rec.get("VirtualHardDiskPath"),
        },
    )


def pool(rec: dict[str, Any], name: str, host_name: str) -> StoragePool:
    return StoragePool(
        id=name,
        name=name,
        capacity_bytes=int(rec.get("TotalSize") or 0),
        free_bytes=int(rec.get("AvailableFreeSpace") or 0),
        formats=frozenset({DiskFormat.VHDX, DiskFormat.VHD}),
        type="directory",
        host=host_name,
        active=bool(rec.get("Exists")),
        hosts=frozenset({host_name}),
        extra={"path": rec["Path"]},
    )


def network(rec: dict[str, Any], host_name: str) -> Network:
    return Network(
        id=rec["Id"], name=rec["Name"], type=_SWITCH_TYPES.get(rec.get("SwitchType", -1), ""), host=host_name
    )


def volume(rec: dict[str, Any], pool_of: Callable[[str], str | None]) -> Volume:
    path = rec["Path"]
    return Volume(
        id=path,
        name=path.rsplit("\\", 1)[-1],
        pool=pool_of(path) or directory(path),
        capacity_bytes=int(rec.get("Size") or 0),
        allocation_bytes=int(rec.get("FileSize") or 0),
        format=vhd_format(path, rec.get("VhdFormat")),
        path=path,
        backing=rec.get("ParentPath") or None,
        extra={
            "attached_to": rec.get("AttachedTo"),
            "read_by": tuple(rec.get("ReadBy") or ()),  # VMs whose disks or checkpoints read it (chains too)
            "vhd_type": rec.get("VhdType"),
            "differencing": rec.get("VhdType") == _DIFFERENCING or bool(rec.get("ParentPath")),
            "checkpoint_disk": path.lower().endswith((".avhdx", ".avhd")),
        },
    )


def snapshot(rec: dict[str, Any], vm_id: str, current: str | None) -> Snapshot:
    return Snapshot(
        id=rec["Id"],
        name=rec["Name"],
        vm=vm_id,
        parent=rec.get("ParentSnapshotId"),
        created=date(rec.get("CreationTime")),
        description=rec.get("Notes") or "",
        memory=rec.get("State") == 6,  # Saved: the checkpoint holds the VM's memory
        current=rec["Id"] == current,
    )
