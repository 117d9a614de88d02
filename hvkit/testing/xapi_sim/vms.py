"""Semantics of VMs: power states, snapshots and checkpoints, revert, clones, copies, provisioning, migration."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

from .api import API, handler
from .disks import destroy_vdi, duplicate_vdi, new_vdi, random_mac
from .model import NULL, Failure
from .pool import now

__all__: list[str] = []

# fields that belong to one VM object and are never copied by snapshot / clone / copy
_OWN = {
    "uuid", "VBDs", "VIFs", "consoles", "snapshots", "children", "parent", "snapshot_of", "resident_on", "metrics",
    "guest_metrics", "domid", "power_state", "suspend_VDI", "snapshot_time", "is_a_snapshot", "crash_dumps", "VTPMs",
    "VUSBs", "VGPUs", "attached_PCIs", "current_operations", "blobs", "scheduled_to_be_resident_on",
    "is_default_template", "is_control_domain",
}  # fmt: skip
_CONFIG = (
    "VCPUs_max", "VCPUs_at_startup", "VCPUs_params", "memory_static_max", "memory_dynamic_max",
    "memory_dynamic_min", "memory_static_min", "memory_target", "HVM_boot_policy", "HVM_boot_params", "platform",
    "other_config", "name_description", "tags", "affinity", "actions_after_shutdown", "actions_after_reboot",
)  # fmt: skip


def _vm(api: API, ref: str) -> dict[str, Any]:
    return api.store.get("VM", ref)


def _need(api: API, vm: str, *states: str) -> dict[str, Any]:
    rec = _vm(api, vm)
    if rec["power_state"] not in states:
        raise Failure("VM_BAD_POWER_STATE", vm, states[0].lower(), rec["power_state"].lower())
    return rec


def _not_template(api: API, vm: str) -> None:
    if _vm(api, vm)["is_a_template"]:
        raise Failure("VM_IS_TEMPLATE", vm)


# -- life cycle ------------------------------------------------------------------------------------------------
def _boot(api: API, vm: str, host: str, paused: bool) -> None:
    s = api.store
    rec = _vm(api, vm)
    s.update("VM", vm, power_state="Paused" if paused else "Running", resident_on=host, domid=len(s.objects["VM"]))
    metrics = rec["metrics"]
    if not s.exists("VM_metrics", metrics):
        metrics = s.new("VM_metrics", {})
        s.set("VM", vm, "metrics", metrics)
    s.update(
        "VM_metrics",
        metrics,
        VCPUs_number=rec["VCPUs_at_startup"],
        memory_actual=rec["memory_dynamic_max"],
        start_time=now(),
        VCPUs_utilisation={str(i): 0.02 for i in range(int(rec["VCPUs_at_startup"]))},
        state=["running"],
        current_domain_type="hvm",
    )
    uuid = rec["uuid"]
    s.new(
        "console", {"protocol": "rfb", "location": f"https://{api.pool.addresses[host]}/console?uuid={uuid}", "VM": vm}
    )
    nets = {}
    for vif in rec["VIFs"]:
        dev = s.get("VIF", vif)["device"]
        n = int(uuid[:4], 16) % 250 + 2
        nets[f"{dev}/ip"] = f"10.{int(dev) % 250}.{n // 250}.{n}"
        nets[f"{dev}/ipv4/0"] = nets[f"{dev}/ip"]
    guest = s.new(
        "VM_guest_metrics",
        {
            "os_version": {"name": "Debian GNU/Linux 12 (bookworm)", "distro": "debian", "major": "12"},
            "networks": nets,
            "PV_drivers_detected": True,
            "live": True,
            "last_updated": now(),
        },
    )
    s.set("VM", vm, "guest_metrics", guest)
    for vbd in rec["VBDs"]:
        s.set("VBD", vbd, "currently_attached", True)
    for vif in rec["VIFs"]:
        s.set("VIF", vif, "currently_attached", True)


def _halt(api: API, vm: str, state: str = "Halted") -> None:
    s = api.store
    rec = _vm(api, vm)
    for console in list(rec["consoles"]):
        s.destroy("console", console)
    if s.exists("VM_guest_metrics", rec["guest_metrics"]):
        s.destroy("VM_guest_metrics", rec["guest_metrics"])
    s.update("VM", vm, power_state=state, resident_on=NULL, domid=-1, guest_metrics=NULL)
    if s.exists("VM_metrics", rec["metrics"]):
        s.update("VM_metrics", rec["metrics"], state=[], VCPUs_utilisation={}, memory_actual=0)
    for vbd in rec["VBDs"]:
        s.set("VBD", vbd, "currently_attached", False)
    for vif in rec["VIFs"]:
        s.set("VIF", vif, "currently_attached", False)


def _assert_memory(api: API, vm: str, host: str) -> None:
    """HOST_NOT_ENOUGH_FREE_MEMORY (needed, available) when the host's free memory, less what its running VMs
    hold, cannot take the VM's static maximum (as VM.assert_can_boot_here)."""
    s = api.store
    metrics = s.get("host", host)["metrics"]
    free = int(s.get("host_metrics", metrics)["memory_free"]) if s.exists("host_metrics", metrics) else 0
    for ref, rec in s.objects["VM"].items():
        running = rec["power_state"] in ("Running", "Paused") and rec["resident_on"] == host
        if ref != vm and running and not rec["is_control_domain"] and s.exists("VM_metrics", rec["metrics"]):
            free -= int(s.get("VM_metrics", rec["metrics"])["memory_actual"])
    needed = int(_vm(api, vm)["memory_static_max"])
    if needed > free:
        raise Failure("HOST_NOT_ENOUGH_FREE_MEMORY", needed, max(free, 0))


def _pick_host(api: API, vm: str) -> str:
    affinity = _vm(api, vm)["affinity"]
    return str(affinity) if api.store.exists("host", affinity) else api.pool.master


@handler("VM.create")
def _create(api: API, session: str, args: dict[str, Any]) -> str:
    from .api import _create as generic

    vm = generic(api.store, "VM", {k: v for k, v in args.items() if k not in ("power_state", "metrics")})
    api.store.set("VM", vm, "metrics", api.store.new("VM_metrics", {}))
    return vm


@handler("VM.start")
def _start(api: API, session: str, vm: str, paused: bool, force: bool) -> None:
    _not_template(api, vm)
    _need(api, vm, "Halted")
    host = _pick_host(api, vm)
    _assert_memory(api, vm, host)
    _boot(api, vm, host, paused)


@handler("VM.start_on")
def _start_on(api: API, session: str, vm: str, host: str, paused: bool, force: bool) -> None:
    _not_template(api, vm)
    _need(api, vm, "Halted")
    _assert_memory(api, vm, host)
    _boot(api, vm, host, paused)


@handler("VM.clean_shutdown")
def _clean_shutdown(api: API, session: str, vm: str) -> None:
    _need(api, vm, "Running")
    _halt(api, vm)


@handler("VM.shutdown")
def _shutdown(api: API, session: str, vm: str) -> None:
    _need(api, vm, "Running", "Paused", "Suspended")
    _drop_suspend_image(api, vm)
    _halt(api, vm)


@handler("VM.hard_shutdown")
def _hard_shutdown(api: API, session: str, vm: str) -> None:
    _need(api, vm, "Running", "Paused", "Suspended")
    _drop_suspend_image(api, vm)
    _halt(api, vm)


@handler("VM.clean_reboot")
@handler("VM.hard_reboot")
def _reboot(api: API, session: str, vm: str) -> None:
    _need(api, vm, "Running")
    api.store.set("VM", vm, "domid", int(_vm(api, vm)["domid"]) + 1)


@handler("VM.pause")
def _pause(api: API, session: str, vm: str) -> None:
    _need(api, vm, "Running")
    api.store.set("VM", vm, "power_state", "Paused")


@handler("VM.unpause")
def _unpause(api: API, session: str, vm: str) -> None:
    _need(api, vm, "Paused")
    api.store.set("VM", vm, "power_state", "Running")


def _memory_image(api: API, vm: str, label: str) -> str:
    rec = _vm(api, vm)
    sr = rec["suspend_SR"] if api.store.exists("SR", rec["suspend_SR"]) else api.pool.default_sr
    return new_vdi(api, sr, {"name_label": label, "type": "suspend", "virtual_size": int(rec["memory_static_max"])})


def _drop_suspend_image(api: API, vm: str) -> None:
    image = _vm(api, vm)["suspend_VDI"]
    if api.store.exists("VDI", image):
        destroy_vdi(api, image)
    api.store.set("VM", vm, "suspend_VDI", NULL)


@handler("VM.suspend")
def _suspend(api: API, session: str, vm: str) -> None:
    _need(api, vm, "Running")
    image = _memory_image(api, vm, f"Suspend image for {_vm(api, vm)['name_label']}")
    _halt(api, vm, "Suspended")
    api.store.set("VM", vm, "suspend_VDI", image)


@handler("VM.resume")
def _resume(api: API, session: str, vm: str, paused: bool, force: bool) -> None:
    _need(api, vm, "Suspended")
    _drop_suspend_image(api, vm)
    _boot(api, vm, _pick_host(api, vm), paused)


@handler("VM.resume_on")
def _resume_on(api: API, session: str, vm: str, host: str, paused: bool, force: bool) -> None:
    _need(api, vm, "Suspended")
    _drop_suspend_image(api, vm)
    _boot(api, vm, host, paused)


@handler("VM.destroy")
def _destroy(api: API, session: str, vm: str) -> None:
    rec = _need(api, vm, "Halted", "Suspended")
    if rec["is_control_domain"]:
        raise Failure("OPERATION_NOT_ALLOWED", "cannot destroy a control domain")
    s = api.store
    _drop_suspend_image(api, vm)
    for vbd in list(rec["VBDs"]):
        s.destroy("VBD", vbd)
    for vif in list(rec["VIFs"]):
        s.destroy("VIF", vif)
    for console in list(rec["consoles"]):
        s.destroy("console", console)
    for cls, field in (("VM_metrics", "metrics"), ("VM_guest_metrics", "guest_metrics")):
        if s.exists(cls, rec[field]):
            s.destroy(cls, rec[field])
    for child in list(rec["children"]):  # the tree closes over a removed snapshot
        s.set("VM", child, "parent", rec["parent"])
    if rec["is_a_snapshot"] and s.exists("VM", rec["snapshot_of"]) and _vm(api, rec["snapshot_of"])["parent"] == vm:
        s.set("VM", rec["snapshot_of"], "parent", rec["parent"])
    s.destroy("VM", vm)


@handler("VM.set_is_a_template")
def _set_template(api: API, session: str, vm: str, value: bool) -> None:
    if value:
        _need(api, vm, "Halted")
    api.store.set("VM", vm, "is_a_template", value)


@handler("VM.set_VCPUs_max")
def _set_vcpus_max(api: API, session: str, vm: str, value: int) -> None:
    _need(api, vm, "Halted")
    if value < 1 or value < int(_vm(api, vm)["VCPUs_at_startup"]):
        raise Failure("INVALID_VALUE", "VCPUs_max", value)
    api.store.set("VM", vm, "VCPUs_max", value)


@handler("VM.set_VCPUs_at_startup")
def _set_vcpus_at_startup(api: API, session: str, vm: str, value: int) -> None:
    if value < 1 or value > int(_vm(api, vm)["VCPUs_max"]):
        raise Failure("INVALID_VALUE", "VCPUs_at_startup", value)
    api.store.set("VM", vm, "VCPUs_at_startup", value)


@handler("VM.set_VCPUs_number_live")
def _set_vcpus_live(api: API, session: str, vm: str, value: int) -> None:
    _need(api, vm, "Running")
    if value < 1 or value > int(_vm(api, vm)["VCPUs_max"]):
        raise Failure("INVALID_VALUE", "VCPUs_number", value)
    api.store.set("VM_metrics", _vm(api, vm)["metrics"], "VCPUs_number", value)
    api.store.set("VM", vm, "VCPUs_at_startup", value)


@handler("VM.set_memory_limits")
def _set_memory_limits(api: API, session: str, vm: str, smin: int, smax: int, dmin: int, dmax: int) -> None:
    _need(api, vm, "Halted")
    if not 0 < smin <= dmin <= dmax <= smax:
        raise Failure("MEMORY_CONSTRAINT_VIOLATION", "static_min <= dynamic_min <= dynamic_max <= static_max")
    api.store.update(
        "VM",
        vm,
        memory_static_min=smin,
        memory_static_max=smax,
        memory_dynamic_min=dmin,
        memory_dynamic_max=dmax,
        memory_target=dmax,
    )


@handler("VM.set_memory")
def _set_memory(api: API, session: str, vm: str, value: int) -> None:
    rec = _need(api, vm, "Halted")
    _set_memory_limits(api, session, vm, min(int(rec["memory_static_min"]), value), value, value, value)


@handler("VM.pool_migrate")
def _pool_migrate(api: API, session: str, vm: str, host: str, options: dict[str, str]) -> None:
    rec = _need(api, vm, "Running")
    s = api.store
    for vbd in rec["VBDs"]:
        vdi = s.get("VBD", vbd)["VDI"]
        if s.exists("VDI", vdi):
            sr = s.get("VDI", vdi)["SR"]
            if not any(s.get("PBD", p)["host"] == host for p in s.get("SR", sr)["PBDs"]):
                raise Failure("VM_REQUIRES_SR", vm, sr)
    for console in list(rec["consoles"]):
        s.set("console", console, "location", f"https://{api.pool.addresses[host]}/console?uuid={rec['uuid']}")
    s.set("VM", vm, "resident_on", host)


@handler("VM.provision")
def _provision(api: API, session: str, vm: str) -> None:
    """Create the disks a template's ``other_config:disks`` describes (``<provision><disk .../>``)."""
    rec = _vm(api, vm)
    text = rec["other_config"].get("disks", "")
    if not text:
        return
    for disk in ET.fromstring(text).findall("disk"):
        sr_uuid = disk.get("sr", "")
        sr = api.store.by_uuid["SR"].get(sr_uuid) if sr_uuid else api.pool.default_sr
        if sr is None:
            raise Failure("UUID_INVALID", "SR", sr_uuid)
        size = int(disk.get("size", "0"))
        vdi = new_vdi(api, sr, {"name_label": f"{rec['name_label']} {disk.get('device')}", "virtual_size": size})
        api.store.new(
            "VBD",
            {
                "VM": vm,
                "VDI": vdi,
                "userdevice": disk.get("device", "0"),
                "bootable": disk.get("bootable") == "true",
                "type": "Disk",
                "mode": "RW",
            },
        )
    other = dict(rec["other_config"])
    other.pop("disks")
    api.store.set("VM", vm, "other_config", other)


# -- snapshots, clones, copies ------------------------------------------------------------------------------------
def _duplicate(api: API, src: str, name: str, disks: str, sr: str = NULL, **fields: Any) -> str:
    """A new VM like ``src``; disks made with ``disks`` = snapshot | clone | copy (into ``sr`` if given)."""
    s = api.store
    rec = _vm(api, src)
    record = {k: copy.deepcopy(v) for k, v in rec.items() if k not in _OWN}
    record.update(name_label=name, **fields)
    vm = s.new("VM", record)
    s.set("VM", vm, "metrics", s.new("VM_metrics", {}))
    keep_mac = disks == "snapshot"
    for vbd in rec["VBDs"]:
        b = s.get("VBD", vbd)
        vdi = b["VDI"]
        if b["type"] == "Disk" and s.exists("VDI", vdi):
            vdi = duplicate_vdi(api, vdi, disks, sr)
        new = {k: b[k] for k in ("userdevice", "device", "bootable", "mode", "type", "empty", "other_config")}
        s.new("VBD", {**new, "VM": vm, "VDI": vdi})
    for vif in rec["VIFs"]:
        f = s.get("VIF", vif)
        mac = f["MAC"] if keep_mac else random_mac()
        s.new("VIF", {"VM": vm, "network": f["network"], "device": f["device"], "MAC": mac, "MTU": f["MTU"]})
    return vm


@handler("VM.snapshot")
def _snapshot(api: API, session: str, vm: str, name: str, ignore_vdis: list[str]) -> str:
    rec = _vm(api, vm)
    if rec["is_a_snapshot"] or rec["is_control_domain"]:
        raise Failure("OPERATION_NOT_ALLOWED", "cannot snapshot this VM")
    snap = _duplicate(
        api, vm, name, "snapshot", is_a_snapshot=True, is_a_template=True, snapshot_of=vm, snapshot_time=now()
    )
    api.store.update("VM", snap, parent=rec["parent"], power_state="Halted")
    api.store.set("VM", vm, "parent", snap)
    return snap


@handler("VM.snapshot_with_quiesce")
def _snapshot_quiesce(api: API, session: str, vm: str, name: str) -> str:
    raise Failure("VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED", vm, "the guest has no VSS agent")


@handler("VM.checkpoint")
def _checkpoint(api: API, session: str, vm: str, name: str) -> str:
    _need(api, vm, "Running")
    snap = _snapshot(api, session, vm, name, [])
    image = _memory_image(api, vm, f"Suspend image for {name}")
    api.store.update("VM", snap, power_state="Suspended", suspend_VDI=image)
    return snap


@handler("VM.revert")
def _revert(api: API, session: str, snapshot: str) -> None:
    s = api.store
    snap = _vm(api, snapshot)
    vm = snap["snapshot_of"]
    if not snap["is_a_snapshot"] or not s.exists("VM", vm):
        raise Failure("VM_REVERT_FAILED", snapshot, vm)
    rec = _vm(api, vm)
    if rec["power_state"] != "Halted":
        _drop_suspend_image(api, vm)
        _halt(api, vm)
    for vbd in list(rec["VBDs"]):
        b = s.get("VBD", vbd)
        s.destroy("VBD", vbd)
        if b["type"] == "Disk" and s.exists("VDI", b["VDI"]) and not s.get("VDI", b["VDI"])["VBDs"]:
            destroy_vdi(api, b["VDI"])
    for vbd in snap["VBDs"]:
        b = s.get("VBD", vbd)
        vdi = duplicate_vdi(api, b["VDI"], "clone") if b["type"] == "Disk" and s.exists("VDI", b["VDI"]) else b["VDI"]
        new = {k: b[k] for k in ("userdevice", "device", "bootable", "mode", "type", "empty")}
        s.new("VBD", {**new, "VM": vm, "VDI": vdi})
    for field in _CONFIG:
        s.set("VM", vm, field, copy.deepcopy(snap[field]))
    s.set("VM", vm, "parent", snapshot)
    if snap["power_state"] == "Suspended" and s.exists("VDI", snap["suspend_VDI"]):
        s.update("VM", vm, power_state="Suspended", suspend_VDI=duplicate_vdi(api, snap["suspend_VDI"], "clone"))


@handler("VM.clone")
def _clone(api: API, session: str, vm: str, name: str) -> str:
    _need(api, vm, "Halted", "Suspended")
    return _duplicate(api, vm, name, "clone")


@handler("VM.copy")
def _copy(api: API, session: str, vm: str, name: str, sr: str) -> str:
    _need(api, vm, "Halted", "Suspended")
    return _duplicate(api, vm, name, "copy", sr)
