"""Proxmox VMs: list (one request), read, delete, power, reconfigure, templates."""

from __future__ import annotations

import re
from typing import Any

import attrs
import requests  # noqa: F401 - imported before proxmoxer, whose https module calls sys.exit without it

from ...driver import Task
from ...errors import HvkitError, InvalidState, NotFound, Unsupported
from ...models import (
    VM,
    Disk,
    DiskBus,
    DiskFormat,
    Firmware,
    Nic,
    NicModel,
    PowerState,
)
from . import _migrate, _names
from . import _property_strings as ps
from ._errors import translate
from ._session import (
    DISK_KEY,
    MiB,
    ProxmoxSession,
    guest_os,
)


def vm_from_resource(session: ProxmoxSession, entry: dict[str, Any]) -> VM:
    status = entry.get("status")
    # "unknown": the node is offline and its last figures expired (pmxcfs keeps them 5 minutes)
    state = {"running": PowerState.RUNNING, "unknown": PowerState.UNKNOWN}.get(str(status), PowerState.STOPPED)
    lock = entry.get("lock")
    if lock == "suspended" and state is PowerState.STOPPED:
        state = PowerState.SUSPENDED
    elif lock == "migrate":
        state = PowerState.MIGRATING
    user_name, tags = _names.name_from_tags(frozenset(t for t in str(entry.get("tags", "")).split(";") if t))
    return VM(
        id=str(entry["vmid"]),
        name=user_name or str(entry.get("name", "")),
        power_state=state,
        cpus=int(entry.get("maxcpu", 0)),
        memory_mib=int(entry.get("maxmem", 0)) // MiB,
        host=entry.get("node"),
        tags=tags,
        template=bool(entry.get("template")),
        guest_os=None,
        extra={"vmid": int(entry["vmid"]), "node": entry.get("node"), "lock": lock, "detail": False},
    )


def list_vms(session: ProxmoxSession, detail: bool = False) -> list[VM]:
    """Every VM of the cluster from one ``/cluster/resources`` call; ``detail=True`` adds each VM's
    config and status (disks, NICs, notes: two calls per VM, PVE has no bulk read of them)."""
    entries = [e for e in session.resources("vm") if e.get("type") == "qemu"]
    if not detail:
        return [vm_from_resource(session, e) for e in entries]
    online, offline = _nodes(session) if entries else (set(), set())
    stranded = [e for e in entries if e["node"] in offline]
    found = shared_disks(session, online, None) if stranded else {}
    out = []
    for e in entries:
        if e["node"] in offline:  # PVE proxies the config read to the node, which does not answer
            out.append(_vm_of_offline_node(session, e, found.get(int(e["vmid"]), [])))
            continue
        with translate():
            config = session.api.nodes(e["node"]).qemu(e["vmid"]).config.get()
            status = session.api.nodes(e["node"]).qemu(e["vmid"]).status.current.get()
        out.append(_vm_from_config(session, e, config, status))
    return out


def get_vm(session: ProxmoxSession, ref: str) -> VM:
    entries = [e for e in session.resources("vm") if e.get("type") == "qemu"]
    found = next((e for e in entries if str(e["vmid"]) == ref), None) or next(
        (e for e in entries if vm_from_resource(session, e).name == ref), None
    )
    if found is None:
        raise NotFound(f"no VM {ref!r} on this Proxmox cluster")
    node, vmid = found["node"], found["vmid"]
    try:
        with translate():
            config = session.api.nodes(node).qemu(vmid).config.get()
            status = session.api.nodes(node).qemu(vmid).status.current.get()
    except HvkitError:
        online, offline = _nodes(session)
        if node not in offline:
            raise
        return _vm_of_offline_node(session, found, shared_disks(session, online, int(vmid)).get(int(vmid), []))
    return _vm_from_config(session, found, config, status)


def _nodes(session: ProxmoxSession) -> tuple[set[str], set[str]]:
    """The names of the nodes online, and of the others."""
    entries = session.resources("node")
    online = {str(e["node"]) for e in entries if e.get("status") == "online"}
    return online, {str(e["node"]) for e in entries} - online


def shared_disks(session: ProxmoxSession, online: set[str], vmid: int | None) -> dict[int, list[Disk]]:
    """The VM disk volumes on the cluster's shared storages, by owner vmid (only ``vmid``'s when given):
    each shared storage listed once, from an ``online`` node that has it (all of them see the same)."""
    readers: dict[str, str] = {}  # shared storage -> an online node that has it
    for e in session.resources("storage"):
        content = set(str(e.get("content", "")).split(","))
        if e.get("shared") and "images" in content and str(e["node"]) in online:
            readers.setdefault(str(e["storage"]), str(e["node"]))
    params: dict[str, Any] = {"content": "images"} | ({"vmid": vmid} if vmid is not None else {})
    out: dict[int, list[Disk]] = {}
    for storage, node in sorted(readers.items()):
        with translate():
            items = session.api.nodes(node).storage(storage).content.get(**params)
        for item in items:
            volid, owner = str(item.get("volid", "")), item.get("vmid")
            name = volid.split(":", 1)[-1].rsplit("/", 1)[-1]
            if owner is None or _VMSTATE.search(name):
                continue
            fmt = str(item.get("format", ""))
            disk = Disk(
                name=name,
                size_bytes=int(item.get("size", 0)),
                format=DiskFormat(fmt) if fmt in ("raw", "qcow2", "vmdk") else None,
                pool=storage,
                volume=volid,
            )
            out.setdefault(int(owner), []).append(disk)
    return out


_VMSTATE = re.compile(r"^vm-\d+-state-")  # a snapshot's saved RAM, not a disk
DISKS_FROM_SHARED = "shared storage; the node's config is unreachable"


def _vm_of_offline_node(session: ProxmoxSession, entry: dict[str, Any], disks: list[Disk]) -> VM:
    """A VM whose node is offline: what ``/cluster/resources`` still says (the last figures the node sent,
    the config's tags and lock) and the disks found on shared storages. Disks on the node's own storage
    cannot be seen, nor which config key each disk is on (a detached disk looks the same)."""
    base = vm_from_resource(session, entry)
    extra = dict(base.extra, disks_from=DISKS_FROM_SHARED)
    # after 5 minutes offline the listing has no name, size or state left (hvkit's own name tag stays)
    name = base.name or f"VM {base.id}"
    return attrs.evolve(base, name=name, disks=tuple(sorted(disks, key=lambda d: d.name)), extra=extra)


def _vm_from_config(
    session: ProxmoxSession, entry: dict[str, Any], config: dict[str, Any], status: dict[str, Any]
) -> VM:
    base = vm_from_resource(session, {**entry, "lock": status.get("lock", config.get("lock"))})
    state = base.power_state
    if status.get("status") == "running":
        state = PowerState.PAUSED if status.get("qmpstatus") == "paused" else PowerState.RUNNING
        if status.get("lock") == "migrate":
            state = PowerState.MIGRATING
    disks = []
    for key, value in config.items():
        m = DISK_KEY.match(key)
        if not m and key != "efidisk0":
            continue
        drive = ps.parse_drive(str(value))
        if drive.get("media") == "cdrom":
            continue
        volid = drive.get("file", "")
        storage = volid.split(":", 1)[0] if ":" in volid else None
        fmt = drive.get("format") or (volid.rsplit(".", 1)[1] if re.search(r"\.(qcow2|raw|vmdk)$", volid) else "raw")
        disks.append(
            Disk(
                name=key,
                size_bytes=ps.size_bytes(drive.get("size", "0")),
                format=DiskFormat(fmt) if fmt in ("raw", "qcow2", "vmdk") else None,
                bus=DiskBus(m.group(1)) if m else None,
                pool=storage,
                volume=volid or None,
            )
        )
    nics = []
    for key in sorted((k for k in config if re.fullmatch(r"net\d+", k)), key=lambda k: int(k[3:])):
        net = ps.parse_net(str(config[key]))
        model = net.get("model", "")
        nics.append(
            Nic(
                mac=net.get("macaddr", "").lower(),
                network=net.get("bridge"),
                model=NicModel(model) if model in {m.value for m in NicModel} else None,
                name=key,
            )
        )
    uuid = ps.parse(str(config.get("smbios1", "")), "uuid").get("uuid")
    memory = str(config.get("memory", "512")).split(",")[0].replace("current=", "")
    cores = int(config.get("cores", 1)) * int(config.get("sockets", 1))
    extra = dict(base.extra)
    extra.update(
        detail=True,
        config={k: v for k, v in config.items() if k not in ("cipassword", "digest")},
        qmpstatus=status.get("qmpstatus"),
    )
    return VM(
        id=base.id,
        name=base.name or str(config.get("name", "")),
        power_state=state,
        cpus=cores,
        memory_mib=int(memory),
        uuid=uuid,
        disks=tuple(disks),  # type: ignore[arg-type]
        nics=tuple(nics),  # type: ignore[arg-type]
        host=base.host,
        firmware=Firmware.UEFI if config.get("bios") == "ovmf" else Firmware.BIOS,
        guest_os=guest_os(config.get("ostype")),
        notes=str(config.get("description", "")),
        tags=_names.name_from_tags(frozenset(t for t in str(config.get("tags", "")).split(";") if t))[1],
        template=bool(config.get("template")),
        extra=extra,
    )


def delete_vm(session: ProxmoxSession, vm: VM, keep_disks: bool) -> Any:
    if keep_disks:
        raise Unsupported("proxmox", "vms.delete(keep_disks=True)", "Proxmox destroys a VM's disks with it")
    clones = _migrate.linked_clones(session, vm, [d.name for d in vm.disks]) if vm.template else []
    if clones:  # PVE would destroy the template and keep their base, owned by no VM any more
        raise InvalidState(
            f"template {vm.name!r} is the base of linked clones ({', '.join(clones)}); delete them first"
        )
    with translate():
        upid = session.qemu(vm).delete(purge=1, **{"destroy-unreferenced-disks": 1})
    return session.follow_task(str(vm.host), upid, "vms.delete", vm.name)


def start_vm(session: ProxmoxSession, vm: VM) -> Any:
    return session.post_status(vm, "start", "vms.start")


def stop_vm(session: ProxmoxSession, vm: VM, force: bool, timeout: float) -> Any:
    if force:
        return session.post_status(vm, "stop", "vms.stop")
    return session.post_status(vm, "shutdown", "vms.stop", timeout=max(1, int(timeout)), forceStop=0)


def reboot_vm(session: ProxmoxSession, vm: VM, force: bool) -> Any:
    return session.post_status(vm, "reset" if force else "reboot", "vms.reboot")


def pause_vm(session: ProxmoxSession, vm: VM) -> Any:
    return session.post_status(vm, "suspend", "vms.pause")


def resume_vm(session: ProxmoxSession, vm: VM) -> Any:
    return session.post_status(vm, "resume", "vms.resume")


def suspend_vm(session: ProxmoxSession, vm: VM) -> Any:
    return session.post_status(vm, "suspend", "vms.suspend", todisk=1)


def reconfigure_vm(session: ProxmoxSession, vm: VM, cpus: int | None, memory_mib: int | None) -> Any:
    params: dict[str, Any] = {}
    if cpus is not None:
        params.update(cores=cpus, sockets=1)
    if memory_mib is not None:
        params["memory"] = memory_mib

    def call() -> str:
        with translate():
            return str(session.qemu(vm).config.post(**params))

    upid = session.retry(call, f"vms.reconfigure {vm.name}")
    return session.follow_task(str(vm.host), upid, "vms.reconfigure", vm.name, vm.id)


def mark_template(session: ProxmoxSession, vm: VM) -> Task:
    """Convert a stopped VM into a template (linked clones on Proxmox come from templates only)."""
    with translate():
        upid = session.qemu(vm).template.post()
    return session.follow_task(str(vm.host), upid, "vms.template", vm.name, vm.id)
