"""VMs: bulk inventory, create from a VMSpec, power, reconfigure, templates, clones, delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...driver import Rollback, Task
from ...errors import InvalidSpec, InvalidState, NotFound
from ...models import VM, DiskFormat, Firmware, NicSpec, PowerState, VMSpec
from . import _convert as cv
from ._session import NULL, XapiSession
from ._templates import find_template, from_template, used_devices

__all__ = ["Inventory", "create", "delete", "get", "inventory", "reconfigure"]

MiB = 1024 * 1024


class Inventory:
    """Every record inventory needs, read with one call per class (the cost does not grow with VMs)."""

    CLASSES = ("VM", "VBD", "VDI", "VIF", "SR", "network", "host", "VM_guest_metrics")

    def __init__(self, s: XapiSession, classes: tuple[str, ...] = CLASSES) -> None:
        self.records: dict[str, dict[str, dict[str, Any]]] = {c: s.call(f"{c}.get_all_records") for c in classes}

    def names(self) -> dict[str, str]:
        out = {ref: rec["name_label"] for c in ("SR", "network") for ref, rec in self.records.get(c, {}).items()}
        out.update({ref: rec["uuid"] for ref, rec in self.records.get("host", {}).items()})
        return out

    def vms(self) -> list[VM]:
        r, names = self.records, self.names()
        vbds, vdis, vifs = r.get("VBD", {}), r.get("VDI", {}), r.get("VIF", {})
        guests = r.get("VM_guest_metrics", {})
        return [
            cv.vm(ref, rec, vbds, vdis, vifs, names, guests.get(rec["guest_metrics"]))
            for ref, rec in r["VM"].items()
            if cv.is_guest(rec)
        ]


def inventory(s: XapiSession, detail: bool) -> list[VM]:
    """Every guest: VM and host records (two calls); with ``detail`` also VBDs, VDIs, VIFs, SRs, networks
    and guest metrics (IP addresses): one call per class."""
    return Inventory(s, Inventory.CLASSES if detail else ("VM", "host")).vms()


def ref_of(s: XapiSession, vm: VM) -> str:
    return str(vm.extra.get("ref") or s.call("VM.get_by_uuid", vm.id))


def get(s: XapiSession, text: str) -> VM:
    """One VM by uuid or name, with a few small reads (no bulk read of the pool)."""
    ref = ""
    if len(text) == 36 and text.count("-") == 4:
        try:
            ref = s.call("VM.get_by_uuid", text)
        except NotFound:
            ref = ""
    if not ref:
        refs = s.call("VM.get_by_name_label", text)
        recs = [(r, s.call("VM.get_record", r)) for r in refs]
        guests = [(r, rec) for r, rec in recs if cv.is_guest(rec)]
        if not guests:
            raise NotFound(f"no VM {text!r} on this xen pool")
        ref, rec = guests[0]
    else:
        rec = s.call("VM.get_record", ref)
        if not cv.is_guest(rec):
            raise NotFound(f"no VM {text!r} on this xen pool (it is a snapshot or a default template)")
    return read(s, ref, rec)


def read(s: XapiSession, ref: str, rec: dict[str, Any] | None = None) -> VM:
    rec = rec or s.call("VM.get_record", ref)
    vbds = {b: s.call("VBD.get_record", b) for b in rec["VBDs"]}
    vdis = {b["VDI"]: s.call("VDI.get_record", b["VDI"]) for b in vbds.values() if b["VDI"] != NULL}
    vifs = {v: s.call("VIF.get_record", v) for v in rec["VIFs"]}
    names: dict[str, str] = {}
    for vdi in vdis.values():
        names.setdefault(vdi["SR"], s.call("SR.get_name_label", vdi["SR"]))
    for vif in vifs.values():
        names.setdefault(vif["network"], s.call("network.get_name_label", vif["network"]))
    if rec["resident_on"] != NULL:
        names[rec["resident_on"]] = s.call("host.get_uuid", rec["resident_on"])
    guest = s.call("VM_guest_metrics.get_record", rec["guest_metrics"]) if rec["guest_metrics"] != NULL else None
    return cv.vm(ref, rec, vbds, vdis, vifs, names, guest)


def _find(s: XapiSession, cls: str, name: str) -> str:
    for ref, rec in s.call(f"{cls}.get_all_records").items():
        if name in (rec["name_label"], rec["uuid"]):
            return str(ref)
    raise NotFound(f"no {cls} {name!r} on this xen pool")


def _vm_record(spec: VMSpec) -> dict[str, Any]:
    memory = str(spec.memory_mib * MiB)
    boot = {"order": "cd"}
    platform = {"acpi": "1", "apic": "true", "pae": "true", "nx": "true", "viridian": "false"}
    if spec.firmware is Firmware.UEFI:
        boot["firmware"] = "uefi"
        platform["secureboot"] = "false"
    if spec.guest_os.value == "windows":
        platform["viridian"] = "true"
    return {
        "name_label": spec.name,
        "name_description": spec.notes,
        "user_version": "1",
        "is_a_template": False,
        "affinity": NULL,
        "memory_static_max": memory,
        "memory_dynamic_max": memory,
        "memory_dynamic_min": memory,
        "memory_static_min": memory,
        "VCPUs_params": {},
        "VCPUs_max": str(spec.cpus),
        "VCPUs_at_startup": str(spec.cpus),
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "restart",
        "PV_bootloader": "",
        "PV_kernel": "",
        "PV_ramdisk": "",
        "PV_args": "",
        "PV_bootloader_args": "",
        "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": boot,
        "HVM_shadow_multiplier": 1.0,
        "platform": platform,
        "PCI_bus": "",
        "other_config": {cv.GUEST_OS_KEY: spec.guest_os.value},
        "recommendations": "",
        "xenstore_data": {},
        "tags": sorted(spec.tags),
        "domain_type": "hvm",
    }


def new_vdi(s: XapiSession, sr: str, name: str, size: int, other: dict[str, str] | None = None) -> str:
    return str(
        s.call(
            "VDI.create",
            {
                "name_label": name,
                "name_description": "",
                "SR": sr,
                "virtual_size": str(size),
                "type": "user",
                "sharable": False,
                "read_only": False,
                "other_config": other or {},
                "xenstore_data": {},
                "sm_config": {},
                "tags": [],
            },
        )
    )


def attach(s: XapiSession, vm: str, vdi: str, userdevice: str, bootable: bool) -> str:
    record = {
        "VM": vm,
        "VDI": vdi,
        "userdevice": userdevice,
        "bootable": bootable,
        "mode": "RW",
        "type": "Disk",
        "empty": False,
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
    }
    return str(s.call("VBD.create", record))


def create(s: XapiSession, spec: VMSpec) -> str:
    """Create a stopped HVM guest: VM record, VDIs on their SRs, VBDs, VIFs; undo all of it on failure.

    ``spec.extra["template"]`` names a template to start from (``VM.clone`` + ``VM.provision``); the
    spec's disks and NICs are added after the template's own.
    """
    if spec.disks and any(d.format not in (None, DiskFormat.VHD, DiskFormat.RAW) for d in spec.disks):
        raise InvalidSpec("XAPI SRs keep disks as VHD (or raw on LVM); other formats are converted on import")
    networks = {n.network: _find(s, "network", n.network) for n in spec.nics}
    srs = {str(d.pool): _find(s, "SR", str(d.pool)) for d in spec.disks if d.volume is None}
    host = _find(s, "host", spec.host) if spec.host else NULL
    template = spec.extra.get("template")
    template_ref = find_template(s, str(template)) if template else None
    with Rollback() as undo:
        if template_ref is not None:
            first_sr = next(iter(srs.values()), None)
            ref = from_template(s, spec, template_ref, first_sr, undo)
            if host != NULL:
                s.call("VM.set_affinity", ref, host)
            disk_base, nic_base = used_devices(s, ref)
        else:
            record = _vm_record(spec)
            record["affinity"] = host
            ref = str(s.call("VM.create", record))
            undo.push(lambda: s.call("VM.destroy", ref), f"destroy VM {ref}")
            disk_base = nic_base = 0
        for i, disk in enumerate(spec.disks):
            device = str(disk_base + i)
            if disk.volume is not None:
                vdi = str(s.call("VDI.get_by_uuid", disk.volume))
            else:
                label = disk.name or f"{spec.name} {cv.disk_name(device)}"
                vdi = new_vdi(s, srs[str(disk.pool)], label, disk.size_bytes)
                undo.push(_destroyer(s, "VDI", vdi), f"destroy VDI {vdi}")
            attach(s, ref, vdi, device, disk_base + i == 0)
        for i, nic in enumerate(spec.nics):
            _add_vif(s, ref, networks[nic.network], str(nic_base + i), nic)
        if spec.cloud_init is not None:
            from ._cloudinit import config_drive

            sr = next(iter(srs.values()), None) or _default_sr(s)
            vdi = config_drive(s, sr, spec)
            undo.push(lambda: s.call("VDI.destroy", vdi), f"destroy VDI {vdi}")
            attach(s, ref, vdi, str(disk_base + len(spec.disks)), False)
        return str(s.call("VM.get_uuid", ref))


def _destroyer(s: XapiSession, cls: str, ref: str) -> Callable[[], object]:
    return lambda: s.call(f"{cls}.destroy", ref)


def _default_sr(s: XapiSession) -> str:
    pool = next(iter(s.call("pool.get_all_records").values()))
    return str(pool["default_SR"])


def _add_vif(s: XapiSession, vm: str, network: str, device: str, nic: NicSpec) -> str:
    record = {
        "device": device,
        "network": network,
        "VM": vm,
        "MAC": nic.mac or "",
        "MTU": "1500",
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
    }
    return str(s.call("VIF.create", record))


def delete(s: XapiSession, vm: VM, keep_disks: bool) -> None:
    """Destroy the VM, its snapshots (with their disks) and, unless ``keep_disks``, its own disks."""
    ref = ref_of(s, vm)
    rec = s.call("VM.get_record", ref)
    for snap in rec["snapshots"]:
        destroy_with_disks(s, snap)
    vdis = [] if keep_disks else _disk_vdis(s, rec)
    s.call("VM.destroy", ref)
    for vdi in vdis:
        s.call("VDI.destroy", vdi)


def _disk_vdis(s: XapiSession, rec: dict[str, Any]) -> list[str]:
    out = []
    for vbd in rec["VBDs"]:
        b = s.call("VBD.get_record", vbd)
        if b["type"] == "Disk" and b["VDI"] != NULL:
            out.append(str(b["VDI"]))
    return out


def destroy_with_disks(s: XapiSession, ref: str) -> None:
    """Destroy a (snapshot) VM and the disks only it uses."""
    rec = s.call("VM.get_record", ref)
    vdis = _disk_vdis(s, rec)
    s.call("VM.destroy", ref)
    for vdi in vdis:
        if not s.call("VDI.get_VBDs", vdi):
            s.call("VDI.destroy", vdi)


def power(s: XapiSession, vm: VM, action: str) -> Task:
    """start | hard_shutdown | clean_reboot | hard_reboot | pause | unpause | suspend, as an XAPI task."""
    ref = ref_of(s, vm)
    uuid = vm.id
    args: tuple[Any, ...] = (ref,)
    method = f"VM.{action}"
    if action == "start":
        method = "VM.resume" if vm.power_state is PowerState.SUSPENDED else "VM.start"
        args = (ref, False, False)
    return s.task(f"vms.{action}", vm.name, method, *args, result=lambda _: uuid)


def clean_shutdown(s: XapiSession, vm: VM, timeout: float) -> str:
    s.run("VM.clean_shutdown", ref_of(s, vm), timeout=timeout)
    return vm.id


def reconfigure(s: XapiSession, vm: VM, cpus: int | None, memory_mib: int | None) -> str:
    ref = ref_of(s, vm)
    if vm.power_state is not PowerState.STOPPED:
        raise InvalidState(f"VM {vm.name!r} is {vm.power_state.value}; XAPI changes CPUs and memory while halted")
    if cpus is not None:
        current_max = int(s.call("VM.get_VCPUs_max", ref))
        if cpus > current_max:
            s.call("VM.set_VCPUs_max", ref, str(cpus))
            s.call("VM.set_VCPUs_at_startup", ref, str(cpus))
        else:
            s.call("VM.set_VCPUs_at_startup", ref, str(cpus))
            s.call("VM.set_VCPUs_max", ref, str(cpus))
    if memory_mib is not None:
        size = str(memory_mib * MiB)
        s.call("VM.set_memory_limits", ref, size, size, size, size)
    return vm.id


def mark_template(s: XapiSession, vm: VM) -> str:
    s.call("VM.set_is_a_template", ref_of(s, vm), True)
    return vm.id


def clone(s: XapiSession, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> Task:
    """Fast clone (``VM.clone``: copy-on-write disks on the same SR) or full copy (``VM.copy``).

    XAPI clones and copies halted or suspended VMs only; a running VM is cloned from a snapshot, as XAPI's own
    tools do (see :func:`_clone_running`).
    """
    ref = ref_of(s, vm)
    if linked and pool is not None:
        raise InvalidSpec("a fast (linked) clone stays on its source's SR; pass no pool")
    sr = _find(s, "SR", pool) if pool else NULL
    host_ref = _find(s, "host", host) if host else None
    if s.call("VM.get_power_state", ref) not in ("Halted", "Suspended"):
        return Task.in_thread("vms.clone", name, lambda: _clone_running(s, ref, name, linked, sr, host_ref))
    method, args = ("VM.clone", (ref, name)) if linked else ("VM.copy", (ref, name, sr))

    def finish(new_ref: Any) -> str:
        new = str(new_ref)
        with Rollback() as undo:  # the clone is removed again if finishing it fails
            undo.push(lambda: destroy_with_disks(s, new), f"destroy clone {new}")
            return _adopt_clone(s, new, host_ref)

    return s.task("vms.clone", name, method, *args, result=finish)


def _clone_running(s: XapiSession, ref: str, name: str, linked: bool, sr: str, host_ref: str | None) -> str:
    """Clone a running VM: ``VM.snapshot``, then ``VM.clone`` (linked) or ``VM.copy`` (full) of the snapshot.

    The snapshot is a means, not a user snapshot: it is destroyed with its VDIs once the clone exists. XAPI
    allows that (as when a user deletes a snapshot a clone was made from): the storage manager keeps the data
    a fast clone shares as hidden parents of its disks. A failure midway removes the clone and the snapshot.
    """
    with Rollback() as undo:
        snap = str(s.run("VM.snapshot", ref, f"{name} (clone source)", []))
        undo.push(lambda: destroy_with_disks(s, snap), f"destroy snapshot {snap}")
        new = str(s.run("VM.clone", snap, name) if linked else s.run("VM.copy", snap, name, sr))
        with Rollback() as undo_clone:
            undo_clone.push(lambda: destroy_with_disks(s, new), f"destroy clone {new}")
            uuid = _adopt_clone(s, new, host_ref)
            destroy_with_disks(s, snap)
        return uuid


def _adopt_clone(s: XapiSession, new: str, host_ref: str | None) -> str:
    """Make a fresh clone an ordinary VM (a clone of a template or snapshot is a template); its uuid."""
    if s.call("VM.get_is_a_template", new):
        s.call("VM.set_is_a_template", new, False)
    if host_ref is not None:
        s.call("VM.set_affinity", new, host_ref)
    return str(s.call("VM.get_uuid", new))
