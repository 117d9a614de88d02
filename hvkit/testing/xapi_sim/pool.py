"""The simulated pool: hosts, SRs, networks and the objects a fresh XCP-ng pool has; disk content files."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .model import NULL, XDate
from .state import Store

__all__ = ["GiB", "MiB", "Pool", "now"]

MiB = 1024 * 1024
GiB = 1024 * MiB
_VM_OPS = ["snapshot", "clone", "copy", "start", "start_on", "pool_migrate", "export", "destroy", "changing_VCPUs"]


def now() -> XDate:
    return XDate(time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime()))


class Pool:
    """A pool of ``hosts`` hosts: a shared NFS SR, one local SR per host, one pool-wide network."""

    def __init__(self, root: Path, hosts: int = 2, *, capacity_gib: int = 200) -> None:
        self.root = root
        self.store = Store()
        self.host_refs: list[str] = []
        self.addresses: dict[str, str] = {}  # host ref -> address
        self._build(hosts, capacity_gib)

    # -- setup --------------------------------------------------------------------------------------
    def _build(self, hosts: int, capacity_gib: int) -> None:
        s = self.store
        network = s.new(
            "network",
            {
                "name_label": "Pool-wide network associated with eth0",
                "bridge": "xenbr0",
                "MTU": 1500,
                "managed": True,
            },
        )
        s.new(
            "network",
            {
                "name_label": "Host internal management network",
                "bridge": "xenapi",
                "MTU": 1500,
                "managed": True,
                "other_config": {"is_guest_installer_network": "true", "is_host_internal_management_network": "true"},
            },
        )
        shared = self.new_sr("NFS storage", "nfs", capacity_gib * GiB, shared=True)
        for i in range(hosts):
            name = f"xcp-ng-{i + 1}"
            metrics = s.new(
                "host_metrics", {"memory_total": 64 * GiB, "memory_free": 60 * GiB, "live": True, "last_updated": now()}
            )
            host = s.new(
                "host",
                {
                    "name_label": name,
                    "hostname": name,
                    "address": f"127.0.0.{i + 1}",
                    "enabled": True,
                    "API_version_major": 2,
                    "API_version_minor": 21,
                    "API_version_vendor": "XenSource",
                    "software_version": {
                        "product_brand": "XCP-ng",
                        "product_version": "8.3.0",
                        "platform_version": "3.4.0",
                        "xapi": "24.19",
                        "hostname": name,
                    },
                    "cpu_info": {
                        "cpu_count": "16",
                        "socket_count": "2",
                        "model": "85",
                        "modelname": "Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz",
                        "speed": "2394.374",
                        "vendor": "GenuineIntel",
                    },
                    "metrics": metrics,
                    "memory_overhead": 512 * MiB,
                },
            )
            self.host_refs.append(host)
            for n in range(16):
                s.new(
                    "host_cpu",
                    {"host": host, "number": n, "vendor": "GenuineIntel", "speed": 2394, "utilisation": 0.03 + n / 400},
                )
            self.addresses[host] = f"127.0.0.{i + 1}"
            s.new("PIF", {"device": "eth0", "host": host, "network": network, "MAC": _mac(0xFE, i), "physical": True})
            s.new("PBD", {"host": host, "SR": shared, "currently_attached": True})
            local = self.new_sr(f"Local storage ({name})", "ext", capacity_gib // 2 * GiB, shared=False)
            s.new("PBD", {"host": host, "SR": local, "currently_attached": True})
            dom0 = s.new(
                "VM",
                {
                    "name_label": f"Control domain on host: {name}",
                    "is_control_domain": True,
                    "power_state": "Running",
                    "resident_on": host,
                    "VCPUs_max": 8,
                    "VCPUs_at_startup": 8,
                    "memory_static_max": 4 * GiB,
                    "memory_dynamic_max": 4 * GiB,
                    "memory_target": 4 * GiB,
                    "domid": 0,
                },
            )
            s.set("VM", dom0, "metrics", s.new("VM_metrics", {"VCPUs_number": 8, "memory_actual": 4 * GiB}))
            s.set("host", host, "control_domain", dom0)
        s.new(
            "pool",
            {
                "name_label": "hvkit-sim",
                "master": self.host_refs[0],
                "default_SR": shared,
                "suspend_image_SR": shared,
                "crash_dump_SR": shared,
            },
        )
        s.new(
            "VM",
            {
                "name_label": "Other install media",
                "name_description": "Template for an HVM guest with install media",
                "is_a_template": True,
                "is_default_template": True,
                "HVM_boot_policy": "BIOS order",
                "HVM_boot_params": {"order": "dc"},
                "VCPUs_max": 1,
                "VCPUs_at_startup": 1,
                "memory_static_max": 1 * GiB,
                "memory_dynamic_max": 1 * GiB,
                "memory_dynamic_min": 1 * GiB,
                "memory_static_min": 512 * MiB,
                "platform": {"nx": "true", "acpi": "1", "apic": "true", "pae": "true", "viridian": "false"},
                "other_config": {
                    "install-methods": "cdrom",
                    "disks": '<provision><disk device="0" size="10737418240" sr="" bootable="true" type="system"/>'
                    "</provision>",
                },
                "domain_type": "hvm",
            },
        )

    def new_sr(self, name: str, kind: str, size: int, *, shared: bool) -> str:
        ref = self.store.new(
            "SR",
            {
                "name_label": name,
                "type": kind,
                "content_type": "user",
                "physical_size": size,
                "virtual_allocation": 0,
                "physical_utilisation": 0,
                "shared": shared,
                "allowed_operations": ["vdi_create", "vdi_destroy", "vdi_resize", "vdi_clone", "vdi_snapshot", "scan"],
            },
        )
        (self.root / self.store.get("SR", ref)["uuid"]).mkdir(parents=True, exist_ok=True)
        return ref

    @property
    def master(self) -> str:
        pool = next(iter(self.store.objects["pool"].values()), None)
        return str(pool["master"]) if pool else self.host_refs[0]

    @property
    def default_sr(self) -> str:
        pool = next(iter(self.store.objects["pool"].values()))
        return str(pool["default_SR"])

    # -- disk content ----------------------------------------------------------------------------------
    def vdi_path(self, vdi: str) -> Path:
        rec = self.store.get("VDI", vdi)
        sr_uuid = self.store.get("SR", rec["SR"])["uuid"]
        return self.root / str(sr_uuid) / f"{rec['uuid']}.raw"

    def sr_free(self, sr: str) -> int:
        rec = self.store.get("SR", sr)
        return int(rec["physical_size"]) - int(rec["virtual_allocation"])

    def account(self, sr: str, delta: int) -> None:
        rec = self.store.get("SR", sr)
        self.store.update(
            "SR",
            sr,
            virtual_allocation=int(rec["virtual_allocation"]) + delta,
            physical_utilisation=int(rec["physical_utilisation"]) + delta,
        )

    def copy_content(self, src: str, dst: str) -> None:
        """Copy a VDI's data into another one's file, keeping holes."""
        source, target = self.vdi_path(src), self.vdi_path(dst)
        size = int(self.store.get("VDI", dst)["virtual_size"])
        with target.open("wb") as out:
            out.truncate(size)
            if not source.exists():
                return
            with source.open("rb") as inp:
                fd = inp.fileno()
                end = min(os.fstat(fd).st_size, size)
                pos = 0
                while pos < end:
                    try:
                        data_at = os.lseek(fd, pos, os.SEEK_DATA)
                    except OSError:
                        break
                    hole_at = min(os.lseek(fd, data_at, os.SEEK_HOLE), end)
                    inp.seek(data_at)
                    out.seek(data_at)
                    remaining = hole_at - data_at
                    while remaining > 0:
                        chunk = inp.read(min(remaining, 4 * MiB))
                        if not chunk:
                            break
                        out.write(chunk)
                        remaining -= len(chunk)
                    pos = hole_at

    def remove_content(self, vdi: str) -> None:
        self.vdi_path(vdi).unlink(missing_ok=True)

    # -- bulk population (benchmarks) -------------------------------------------------------------------
    def populate(self, count: int, *, running_every: int = 2) -> None:
        """Add ``count`` VMs, each with one disk and one NIC (records only; no disk files)."""
        s = self.store
        network = s.find("network", bridge="xenbr0")[0]
        sr = self.default_sr
        with s.lock:
            for i in range(count):
                running = i % running_every == 0
                host = self.host_refs[i % len(self.host_refs)] if running else NULL
                vm = s.new("VM", vm_fields(f"bench-{i:05d}", 2, 2 * GiB))
                if running:
                    s.update("VM", vm, power_state="Running", resident_on=host, domid=i + 1)
                s.set("VM", vm, "metrics", s.new("VM_metrics", {"VCPUs_number": 2, "memory_actual": 2 * GiB}))
                vdi = s.new("VDI", {"name_label": f"bench-{i:05d} disk", "SR": sr, "virtual_size": 32 * GiB})
                s.new(
                    "VBD",
                    {"VM": vm, "VDI": vdi, "userdevice": "0", "device": "xvda", "type": "Disk", "mode": "RW"},
                )
                s.new("VIF", {"VM": vm, "network": network, "device": "0", "MAC": _mac(0x16, i), "MTU": 1500})


def vm_fields(name: str, cpus: int, memory: int) -> dict[str, Any]:
    """The fields of a new HVM guest as XenCenter and xe create it."""
    return {
        "name_label": name,
        "user_version": 1,
        "VCPUs_max": cpus,
        "VCPUs_at_startup": cpus,
        "memory_static_max": memory,
        "memory_dynamic_max": memory,
        "memory_dynamic_min": memory,
        "memory_static_min": memory,
        "memory_target": memory,
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": "cd"},
        "platform": {"acpi": "1", "apic": "true", "pae": "true", "nx": "true", "viridian": "false"},
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "restart",
        "domain_type": "hvm",
        "allowed_operations": list(_VM_OPS),
    }


def _mac(prefix: int, n: int) -> str:
    return f"{prefix:02x}:3e:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}:01"
