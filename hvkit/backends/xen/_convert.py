"""XAPI records -> hvkit models (pure functions over records read in bulk)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from ...models import (
    VM,
    Disk,
    DiskFormat,
    Firmware,
    GuestOS,
    Host,
    Network,
    Nic,
    PowerState,
    Snapshot,
    StoragePool,
    Volume,
)

__all__ = ["MiB", "Records", "host", "network", "pool", "snapshot", "vm", "volume", "xapi_time"]

MiB = 1024 * 1024
NULL = "OpaqueRef:NULL"
Records = Mapping[str, Mapping[str, Any]]  # ref -> record
GUEST_OS_KEY = "hvkit_guest_os"
CONFIG_DRIVE_KEY = "hvkit_config_drive"
_POWER = {
    "Halted": PowerState.STOPPED,
    "Running": PowerState.RUNNING,
    "Paused": PowerState.PAUSED,
    "Suspended": PowerState.SUSPENDED,
}


def xapi_time(value: Any) -> dt.datetime | None:
    text = str(getattr(value, "value", value) or "")
    for fmt in ("%Y%m%dT%H:%M:%SZ", "%Y%m%dT%H:%M:%S"):
        try:
            stamp = dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        return None if stamp.year <= 1970 else stamp
    return None


def is_guest(rec: Mapping[str, Any]) -> bool:
    """A VM users see: no control domain, default template or snapshot."""
    return not (rec["is_control_domain"] or rec["is_a_snapshot"] or rec.get("is_default_template"))


def disk_name(userdevice: str) -> str:
    n = int(userdevice) if str(userdevice).isdigit() else 0
    return "xvd" + (chr(ord("a") + n) if n < 26 else f"{n}")


def ip_addresses(guest: Mapping[str, Any] | None) -> list[str]:
    """Addresses the guest agent reports (``networks``: ``0/ip``, ``0/ipv4/0``, ``0/ipv6/0`` ...)."""
    found: list[str] = []
    networks = (guest or {}).get("networks") or {}
    for key in sorted(networks):
        value = str(networks[key])
        if value and "/ip" in key and value not in found:
            found.append(value)
    return found


def vm(
    ref: str,
    rec: Mapping[str, Any],
    vbds: Records,
    vdis: Records,
    vifs: Records,
    names: Mapping[str, str],
    guest: Mapping[str, Any] | None = None,
) -> VM:
    """A VM from its record; ``names`` maps SR, network and host refs to their names or uuids."""
    disks = []
    for vbd_ref in rec["VBDs"]:
        vbd = vbds.get(vbd_ref)
        if vbd is None or vbd["type"] != "Disk" or vbd["VDI"] not in vdis:
            continue
        vdi = vdis[vbd["VDI"]]
        disks.append(
            Disk(
                name=disk_name(vbd["userdevice"]),
                size_bytes=int(vdi["virtual_size"]),
                format=DiskFormat.VHD,
                pool=names.get(vdi["SR"]),
                volume=vdi["uuid"],
            )
        )
    disks.sort(key=lambda d: (len(d.name), d.name))
    nics = []
    for vif_ref in rec["VIFs"]:
        vif = vifs.get(vif_ref)
        if vif is not None:
            nics.append(Nic(mac=vif["MAC"], network=names.get(vif["network"]), name=f"eth{vif['device']}"))
    nics.sort(key=lambda n: n.name or "")
    boot = rec.get("HVM_boot_params") or {}
    os_name = (rec.get("other_config") or {}).get(GUEST_OS_KEY)
    host_ref = rec["resident_on"]
    return VM(
        id=rec["uuid"],
        name=rec["name_label"],
        power_state=_POWER.get(rec["power_state"], PowerState.UNKNOWN),
        cpus=int(rec["VCPUs_at_startup"]),
        memory_mib=int(rec["memory_static_max"]) // MiB,
        uuid=rec["uuid"],
        disks=disks,
        nics=nics,
        host=names.get(host_ref) if host_ref != NULL else None,
        firmware=Firmware.UEFI if boot.get("firmware") == "uefi" else Firmware.BIOS,
        guest_os=GuestOS(os_name) if os_name in {g.value for g in GuestOS} else None,
        notes=rec["name_description"],
        tags=frozenset(rec.get("tags") or ()),
        template=bool(rec["is_a_template"]),
        ip_addresses=ip_addresses(guest),
        extra={"ref": ref, "metrics": rec["metrics"], "guest_metrics": rec["guest_metrics"]},
    )


def host(ref: str, rec: Mapping[str, Any], metrics: Mapping[str, Any] | None) -> Host:
    cpu = rec.get("cpu_info") or {}
    software = rec.get("software_version") or {}
    threads = int(cpu.get("cpu_count", 0) or 0)
    total = int(metrics["memory_total"]) if metrics else 0
    free = int(metrics["memory_free"]) if metrics else None
    speed = cpu.get("speed")
    return Host(
        id=rec["uuid"],
        name=rec["name_label"],
        cpu_sockets=int(cpu.get("socket_count", 1) or 1),
        cpu_cores=threads,
        cpu_threads=threads,
        memory_mib=total // MiB,
        hypervisor_kind="xen",
        hypervisor_version=f"{software.get('product_brand', 'XAPI')} {software.get('product_version', '')}".strip(),
        cpu_model=str(cpu.get("modelname", "")),
        cpu_mhz=int(float(speed)) if speed else None,
        memory_used_mib=(total - free) // MiB if free is not None else None,
        maintenance=not rec["enabled"],
        connected=bool(metrics["live"]) if metrics else True,
        extra={"ref": ref, "address": rec["address"]},
    )


def pool(ref: str, rec: Mapping[str, Any], local_host: str | None) -> StoragePool:
    size = int(rec["physical_size"])
    return StoragePool(
        id=rec["uuid"],
        name=rec["name_label"],
        capacity_bytes=size,
        free_bytes=max(0, size - int(rec["physical_utilisation"])),
        shared=bool(rec["shared"]),
        formats=frozenset({DiskFormat.VHD}),
        type=rec["type"],
        host=None if rec["shared"] else local_host,
        extra={"ref": ref, "content_type": rec["content_type"]},
    )


def network(ref: str, rec: Mapping[str, Any]) -> Network:
    return Network(id=rec["uuid"], name=rec["name_label"], type="bridge", bridge=rec["bridge"], extra={"ref": ref})


def volume(ref: str, rec: Mapping[str, Any], pool_name: str) -> Volume:
    return Volume(
        id=rec["uuid"],
        name=rec["name_label"],
        pool=pool_name,
        capacity_bytes=int(rec["virtual_size"]),
        allocation_bytes=int(rec["physical_utilisation"]),
        format=DiskFormat.VHD,
        extra={"ref": ref, "VBDs": tuple(rec["VBDs"])},
    )


def snapshot(ref: str, rec: Mapping[str, Any], vm_rec: Mapping[str, Any], uuids: Mapping[str, str]) -> Snapshot:
    parent = rec["parent"]
    return Snapshot(
        id=rec["uuid"],
        name=rec["name_label"],
        vm=vm_rec["uuid"],
        parent=uuids.get(parent) if parent != NULL else None,
        created=xapi_time(rec["snapshot_time"]),
        description=rec["name_description"],
        memory=rec["power_state"] == "Suspended",
        current=vm_rec["parent"] == ref,
    )
