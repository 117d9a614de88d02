"""VMs: inventory, create, delete, power, reconfigure, clone."""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

from ...errors import InvalidSpec, NotFound
from ...models import VM, DiskBus, DiskFormat, Firmware, GuestOS, Host, Network, StoragePool, VMSpec
from . import _convert
from ._session import Session

__all__ = ["clone", "create", "delete", "get", "inventory", "power", "reconfigure"]

MiB = 1024 * 1024
_BAD_FILE_CHARS = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def inventory(s: Session, *, with_vms: bool) -> tuple[Host, list[Network], list[StoragePool], list[VM]]:
    """Host, switches, storage paths and (optionally) every VM with its disks and adapters: one round trip."""
    doc = s.run("inventory", {"WithVMs": with_vms, "Pools": list(s.pool_dirs.values())})
    host = _convert.host(doc["Host"])
    learn_default(s, doc["Host"].get("VirtualHardDiskPath") or "")
    names = {path.lower(): name for name, path in s.pool_dirs.items()}
    pools = [_convert.pool(p, names.get(p["Path"].lower(), p["Path"]), host.name) for p in doc.get("Pools") or []]
    networks = [_convert.network(n, host.name) for n in doc.get("Switches") or []]
    vms = [_convert.vm(v, s.pool_name) for v in doc.get("VMs") or []]
    return host, networks, pools, vms


def learn_default(s: Session, vhd_path: str) -> None:
    """The host's default virtual hard disk path is the pool ``default``."""
    if vhd_path:
        s.vhd_path = vhd_path
        if "default" not in s.pool_dirs:
            s.pool_dirs = {"default": vhd_path.rstrip("\\"), **s.pool_dirs}


def get(s: Session, ref: str) -> VM:
    try:
        uuid.UUID(ref)
        params: dict[str, str | None] = {"Id": ref, "Name": ref}
    except ValueError:
        params = {"Id": None, "Name": ref}
    return _convert.vm(s.run("vm.get", params), s.pool_name)


def file_name(text: str) -> str:
    """``text`` usable as a Windows file name."""
    clean = _BAD_FILE_CHARS.sub("_", text).strip(" .")
    return clean or "disk"


def new_mac() -> str:
    """A static MAC in Microsoft's Hyper-V range (00:15:5D)."""
    return "00155D" + secrets.token_hex(3).upper()


def create(s: Session, spec: VMSpec, pools: dict[str, StoragePool], seed: tuple[str, str] | None) -> VM:
    generation = 2 if spec.firmware is Firmware.UEFI else 1
    disks: list[dict[str, Any]] = []
    for i, d in enumerate(spec.disks):
        fmt = d.format or DiskFormat.VHDX
        if fmt not in (DiskFormat.VHDX, DiskFormat.VHD):
            raise InvalidSpec(f"Hyper-V disks are VHDX or VHD, not {fmt.value}")
        if d.bus is DiskBus.IDE and generation == 2:
            raise InvalidSpec("a Generation 2 VM (UEFI) has no IDE controller; use bus='scsi'")
        controller = (
            "IDE" if d.bus is DiskBus.IDE or (generation == 1 and i == 0 and d.bus is not DiskBus.SCSI) else "SCSI"
        )
        if d.volume:
            disks.append(
                {"Dir": _convert.directory(d.volume), "Path": d.volume, "SizeBytes": 0, "Controller": controller}
            )
            continue
        pool = pools.get(d.pool or "")
        if pool is None:
            raise NotFound(f"no storage pool {d.pool!r} on this Hyper-V host")
        pool_dir = str(pool.extra["path"])
        ext = ".vhd" if fmt is DiskFormat.VHD else ".vhdx"
        name = file_name(d.name or f"{spec.name}-disk{i}") + ("" if (d.name or "").lower().endswith(ext) else ext)
        size = -(-int((d.size_gib or 0) * 1024**3) // MiB) * MiB  # whole MiB, as VHDX wants
        disks.append({"Dir": pool_dir, "Path": f"{pool_dir}\\{name}", "SizeBytes": size, "Controller": controller})
    memory = spec.memory_mib * MiB
    if spec.memory_mib % 2:
        raise InvalidSpec("Hyper-V memory is a multiple of 2 MiB")
    params: dict[str, Any] = {
        "Name": spec.name,
        "Generation": generation,
        "Cpus": spec.cpus,
        "MemoryBytes": memory,
        "VMPath": None,
        "Notes": spec.notes,
        "Disks": disks,
        "Nics": [{"Switch": n.network, "Mac": (n.mac or "").replace(":", "").upper() or new_mac()} for n in spec.nics],
        "SecureBoot": bool(spec.extra.get("secure_boot", True)) if generation == 2 else False,
        "SecureBootTemplate": "MicrosoftWindows"
        if spec.guest_os is GuestOS.WINDOWS
        else "MicrosoftUEFICertificateAuthority",
        "SeedIso": seed[1] if seed else None,
        "SeedPath": seed[0] if seed else None,
    }
    return _convert.vm(s.run("vm.create", params), s.pool_name)


def delete(s: Session, vm: VM, keep_disks: bool) -> None:
    s.run("vm.delete", {"Id": vm.id, "KeepDisks": keep_disks})


def power(s: Session, vm: VM, action: str, limit: float | None = None) -> VM:
    """One power action; ``limit`` bounds a guest shutdown (Stop-VM waits for the guest)."""
    return _convert.vm(s.run("vm.power", {"Id": vm.id, "Action": action}, limit=limit), s.pool_name)


def reconfigure(s: Session, vm: VM, cpus: int | None, memory_mib: int | None) -> VM:
    if memory_mib is not None and memory_mib % 2:
        raise InvalidSpec("Hyper-V memory is a multiple of 2 MiB")
    params = {"Id": vm.id, "Cpus": cpus, "MemoryBytes": memory_mib * MiB if memory_mib else None}
    return _convert.vm(s.run("vm.reconfigure", params), s.pool_name)


def clone(s: Session, vm: VM, name: str, linked: bool, pool: str | None) -> VM:
    """Full clone: Export-VM, then Import-VM -Copy -GenerateNewId; linked: differencing VHDX children."""
    name_of_pool = pool or next((d.pool for d in vm.disks if d.pool), None) or "default"
    base = s.pool_dir(name_of_pool)
    params = {
        "Id": vm.id,
        "Name": name,
        "Linked": linked,
        "VMPath": None,
        "VhdDir": f"{base}\\{file_name(name)}",
        "ExportDir": f"{base}\\.hvkit-export-{uuid.uuid4().hex[:12]}",
        "Macs": [new_mac() for _ in vm.nics],
    }
    return _convert.vm(s.run("vm.clone", params), s.pool_name)
