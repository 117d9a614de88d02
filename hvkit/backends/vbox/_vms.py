"""VMs: inventory (one ``list -l vms`` and one ``list hdds`` for any number of VMs), create, power, change,
clone, delete."""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any

from hvkit import errors
from hvkit.driver import Rollback, TaskInfo, wait_for
from hvkit.models import VM, Disk, DiskBus, DiskFormat, Firmware, GuestOS, Nic, NicModel, PowerState, TaskState, VMSpec

from . import _linked, _parse, _storage
from ._session import Session

__all__ = ["clone_vm", "create_vm", "delete_vm", "get_vm", "list_vms", "power", "reconfigure_vm", "stop_vm"]

STATES = {
    "poweroff": PowerState.STOPPED,
    "powered off": PowerState.STOPPED,
    "saved": PowerState.SUSPENDED,
    "aborted-saved": PowerState.SUSPENDED,
    "aborted": PowerState.CRASHED,
    "gurumeditation": PowerState.CRASHED,
    "guru meditation": PowerState.CRASHED,
    "running": PowerState.RUNNING,
    "paused": PowerState.PAUSED,
    "livesnapshotting": PowerState.RUNNING,
    "onlinesnapshotting": PowerState.RUNNING,
    "starting": PowerState.STARTING,
    "restoring": PowerState.STARTING,
    "stopping": PowerState.STOPPING,
    "saving": PowerState.STOPPING,
    "teleporting": PowerState.MIGRATING,
    "teleportingin": PowerState.MIGRATING,
    "teleportingpausedvm": PowerState.MIGRATING,
}
# storage controller type -> bus; bus -> (controller name, storagectl --add, --controller)
CONTROLLER_BUS = {
    "PIIX3": DiskBus.IDE,
    "PIIX4": DiskBus.IDE,
    "ICH6": DiskBus.IDE,
    "IntelAhci": DiskBus.SATA,
    "LsiLogic": DiskBus.SCSI,
    "BusLogic": DiskBus.SCSI,
    "LsiLogicSas": DiskBus.SCSI,
    "NVMe": DiskBus.NVME,
    "VirtIO": DiskBus.VIRTIO,
    "VirtioSCSI": DiskBus.VIRTIO,
}
BUS_CONTROLLER = {
    DiskBus.SATA: ("SATA", "sata", "IntelAhci"),
    DiskBus.SCSI: ("SCSI", "scsi", "LsiLogic"),
    DiskBus.IDE: ("IDE", "ide", "PIIX4"),
    DiskBus.NVME: ("NVMe", "pcie", "NVMe"),
    DiskBus.VIRTIO: ("VirtIO", "virtio", "VirtIO"),
}
NIC_TYPES = {"82540EM": NicModel.E1000, "82543GC": NicModel.E1000, "82545EM": NicModel.E1000, "virtio": NicModel.VIRTIO}
MODEL_NIC = {NicModel.E1000: "82540EM", NicModel.VIRTIO: "virtio"}
OS_TYPES = {
    GuestOS.LINUX: "Linux26_64",
    GuestOS.WINDOWS: "Windows2019_64",
    GuestOS.BSD: "FreeBSD_64",
    GuestOS.OTHER: "Other_64",
}
HOST_ONLY_RANGE = ipaddress.ip_network("192.168.56.0/21")
MAX_NICS = 8  # PIIX3 chipset


def _guest(description: str) -> GuestOS | None:
    text = description.lower()
    for word, family in (("windows", GuestOS.WINDOWS), ("bsd", GuestOS.BSD), ("other", GuestOS.OTHER)):
        if word in text:
            return family
    return GuestOS.LINUX if text else None


def _mac(raw: str) -> str:
    text = raw.replace(":", "").lower()
    return ":".join(text[i : i + 2] for i in range(0, 12, 2))


def _media(session: Session) -> dict[str, dict[str, str]]:
    return {b["UUID"].lower(): b for b in _storage.hdd_blocks(session)}


def _disk(name: str, medium_uuid: str, path: str, bus: DiskBus | None, media: dict[str, dict[str, str]]) -> Disk:
    block = media.get(medium_uuid, {})
    return Disk(
        name=name,
        size_bytes=_storage.capacity(block),
        format=_storage.FORMATS.get(block.get("Storage format", "")),
        bus=bus,
        pool=_storage.POOL,
        volume=medium_uuid,
        path=path or block.get("Location"),
    )


def from_machinereadable(values: dict[str, str], media: dict[str, dict[str, str]]) -> VM:
    """A VM from ``showvminfo --machinereadable`` keys (unknown keys ignored)."""
    ctl_types = {
        values[k]: values.get(f"storagecontrollertype{k[21:]}", "")
        for k in values
        if re.fullmatch(r"storagecontrollername\d+", k)
    }
    disks = []
    for key, value in values.items():
        match = re.fullmatch(r"(.+)-ImageUUID-(\d+)-(\d+)", key)
        if match and match.group(1) in ctl_types:
            ctl, port, device = match.groups()
            path = values.get(f"{ctl}-{port}-{device}", "")
            if media.get(value.lower()) is None and path.lower().endswith((".iso", ".img")):
                continue  # an optical or floppy image, not a hard disk
            disks.append(
                _disk(f"{ctl}-{port}-{device}", value.lower(), path, CONTROLLER_BUS.get(ctl_types[ctl]), media)
            )
    nics = []
    for i in range(1, 37):
        kind = values.get(f"nic{i}")
        if kind is None or kind == "none":
            continue
        net = {
            "nat": "nat",
            "bridged": values.get(f"bridgeadapter{i}"),
            "hostonly": values.get(f"hostonlyadapter{i}"),
            "intnet": values.get(f"intnet{i}"),
            "natnetwork": values.get(f"nat-network{i}"),
        }.get(kind)
        nics.append(
            Nic(
                mac=_mac(values.get(f"macaddress{i}", "")),
                network=net,
                model=NIC_TYPES.get(values.get(f"nictype{i}", "")),
                name=f"nic{i}",
            )
        )
    vm_uuid = values.get("UUID", "").lower()
    state = values.get("VMState", "")
    return VM(
        id=vm_uuid,
        name=values.get("name", ""),
        power_state=STATES.get(state, PowerState.UNKNOWN),
        cpus=int(values.get("cpus", "1")),
        memory_mib=int(values.get("memory", "0")),
        uuid=vm_uuid,
        disks=disks,
        nics=nics,
        host=None,
        firmware=Firmware.UEFI if values.get("firmware", "").upper().startswith("EFI") else Firmware.BIOS,
        guest_os=_guest(values.get("ostype", "")),
        notes=values.get("description", ""),
        extra={
            "vbox_state": state,
            "config_file": values.get("CfgFile", ""),
            "ostype": values.get("ostype", ""),
            "vrde": values.get("vrde") == "on",
        },
    )


def from_human(block: dict[str, Any], media: dict[str, dict[str, str]]) -> VM:
    """A VM from one block of ``list -l vms``."""
    disks = [
        _disk(f"{ctl}-{port}-{dev}", medium, path, CONTROLLER_BUS.get(block["controllers"].get(ctl, "")), media)
        for ctl, port, dev, medium, path in block["attachments"]
        if medium in media
    ]
    nics = []
    for i in range(1, 37):
        row = block.get(f"NIC {i}", "")
        match = re.match(r"MAC: ([0-9A-Fa-f]{12}), Attachment: ([^,]+),.*Type: ([^,]+),", row)
        if not match:
            continue
        attach = match.group(2)
        named = re.search(r"'(.*)'", attach)
        net = "nat" if attach == "NAT" else (named.group(1) if named else attach)
        nics.append(Nic(mac=_mac(match.group(1)), network=net, model=NIC_TYPES.get(match.group(3)), name=f"nic{i}"))
    state = re.sub(r"\s*\(since .*\)$", "", block.get("State", ""))
    vm_uuid = block.get("UUID", "").lower()
    memory = re.match(r"(\d+)", block.get("Memory size", "0"))
    return VM(
        id=vm_uuid,
        name=block.get("Name", ""),
        power_state=STATES.get(state, PowerState.UNKNOWN),
        cpus=int(block.get("Number of CPUs", "1")),
        memory_mib=int(memory.group(1)) if memory else 0,
        uuid=vm_uuid,
        disks=disks,
        nics=nics,
        firmware=Firmware.UEFI if block.get("Firmware", "").upper().startswith("EFI") else Firmware.BIOS,
        guest_os=_guest(block.get("Guest OS", "")),
        notes=block.get("Description", ""),
        extra={"vbox_state": state, "config_file": block.get("Config file", ""), "ostype": block.get("Guest OS", "")},
    )


def list_vms(session: Session) -> list[VM]:
    """Every VM from one ``list -l vms`` and one ``list hdds`` (disk sizes), whatever the VM count."""
    blocks = _parse.human_vms(session.run(["list", "-l", "vms"]))
    media = _media(session) if any(b["attachments"] for b in blocks) else {}
    return [from_human(b, media) for b in blocks if b.get("UUID") and b.get("Name") != "<inaccessible>"]


def get_vm(session: Session, ref: str) -> VM:
    values = _parse.machinereadable(session.run(["showvminfo", ref, "--machinereadable"]))
    if not values.get("UUID"):
        raise errors.NotFound(f"no VM {ref!r} on this VirtualBox host")
    media = _media(session) if any("-ImageUUID-" in k for k in values) else {}
    return from_machinereadable(values, media)


def _check_networks(session: Session, spec: VMSpec, networks: dict[str, Any]) -> None:
    if len(spec.nics) > MAX_NICS:
        raise errors.InvalidSpec(
            f"VirtualBox gives a VM at most {MAX_NICS} NICs (PIIX3 chipset); asked for {len(spec.nics)}"
        )
    for nic in spec.nics:
        net = networks[nic.network]
        if net.type == "hostonly" and session.host_only_restricted:
            address = net.extra.get("ip", "")
            if address and ipaddress.ip_address(address) not in HOST_ONLY_RANGE:
                raise errors.InvalidSpec(
                    f"host-only network {net.name!r} has the address {address}, outside 192.168.56.0/21: "
                    f"VirtualBox {session.version_text} (6.1.28 and later) refuses it unless /etc/vbox/networks.conf "
                    "on the host allows that range"
                )
        if nic.model not in MODEL_NIC:
            raise errors.InvalidSpec(f"VirtualBox has no {nic.model.value} NIC model (it has e1000 and virtio)")


def create_vm(session: Session, spec: VMSpec, networks: dict[str, Any]) -> VM:
    """createvm --register, modifyvm, storagectl, createmedium, storageattach; undone by VM UUID on failure."""
    _check_networks(session, spec, networks)
    with Rollback() as undo, session.serial(spec.name):
        out = session.run(["createvm", "--name", spec.name, "--ostype", OS_TYPES[spec.guest_os], "--register"])
        vm_uuid = re.search(r"UUID: ([0-9a-fA-F-]{36})", out)
        cfg = re.search(r"Settings file: '(.*)'", out)
        if not vm_uuid or not cfg:
            raise errors.BackendError(f"createvm did not report the new VM's UUID and settings file: {out[-200:]!r}")
        ident = vm_uuid.group(1)
        undo.push(lambda: session.run(["unregistervm", ident, "--delete"]), f"remove VM {ident}")
        args = [
            "modifyvm",
            ident,
            "--memory",
            str(spec.memory_mib),
            "--cpus",
            str(spec.cpus),
            "--firmware",
            "efi" if spec.firmware is Firmware.UEFI else "bios",
        ]
        if spec.notes:
            args += ["--description", spec.notes]
        args += _nic_args(session, spec, networks)
        session.run(args, vm=ident)
        _attach_disks(session, ident, spec, cfg.group(1).rsplit("/", 1)[0], undo)
        return get_vm(session, ident)


def _nic_args(session: Session, spec: VMSpec, networks: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for i in range(1, max(len(spec.nics), 1) + 1):
        if i > len(spec.nics):
            args += [f"--nic{i}", "none"]
            continue
        nic, net = spec.nics[i - 1], networks[spec.nics[i - 1].network]
        kind = {"nat": "nat", "bridge": "bridged", "hostonly": "hostonly", "natnetwork": "natnetwork"}[net.type]
        args += [f"--nic{i}", kind, f"{session.opt('nictype')}{i}", MODEL_NIC[nic.model]]
        if kind != "nat":
            option = {"bridged": "bridgeadapter", "hostonly": "hostonlyadapter", "natnetwork": "natnetwork"}[kind]
            args += [f"{session.opt(option)}{i}", net.name]
        args += [f"{session.opt('macaddress')}{i}", nic.mac.replace(":", "").upper() if nic.mac else "auto"]
    return args


def _attach_disks(session: Session, ident: str, spec: VMSpec, folder: str, undo: Rollback) -> None:
    controllers: set[DiskBus] = set()
    ports: dict[DiskBus, int] = {}
    for n, disk in enumerate(spec.disks, 1):
        bus = disk.bus
        name, add, kind = BUS_CONTROLLER[bus]
        if bus not in controllers:
            session.run(["storagectl", ident, "--name", name, "--add", add, "--controller", kind], vm=ident)
            controllers.add(bus)
        if disk.volume is not None:
            medium = disk.volume
        else:
            fmt = disk.format or DiskFormat.VDI
            path = f"{folder}/{spec.name}-disk{n}.{_storage.EXTENSIONS[fmt]}"
            medium = _storage.create_medium(session, path, disk.size_bytes, fmt)
            undo.push(functools.partial(_storage.close_medium, session, medium, delete=True), f"delete disk {medium}")
        slot = ports.get(bus, 0)
        ports[bus] = slot + 1
        port, device = (slot // 2, slot % 2) if bus is DiskBus.IDE else (slot, 0)
        session.run(
            [
                "storageattach",
                ident,
                "--storagectl",
                name,
                "--port",
                str(port),
                "--device",
                str(device),
                "--type",
                "hdd",
                "--medium",
                medium,
            ],
            vm=ident,
        )


def delete_vm(session: Session, vm: VM, keep_disks: bool) -> None:
    """unregistervm; a linked clone's base snapshot on its source goes too, once no other clone is linked to it
    (a fixed number of runs, see ``_linked``; kept disks still need the base, so it stays then)."""
    base = None if keep_disks else _linked.base_of(session, vm.id)
    session.run(["unregistervm", vm.id] + ([] if keep_disks else ["--delete"]), vm=vm.id)
    if base is not None:
        _linked.release(session, *base, vm.id)


def power(session: Session, vm: VM, action: str) -> None:
    """startvm --type headless, or a controlvm action (pause, resume, savestate, poweroff, reset ...)."""
    if action == "start":
        session.run(["startvm", vm.id, "--type", "headless"], vm=vm.id)
    else:
        session.run(["controlvm", vm.id, action], vm=vm.id)


def stop_vm(session: Session, vm: VM, force: bool, timeout: float) -> None:
    if force or vm.power_state is PowerState.SUSPENDED:
        if vm.power_state is PowerState.SUSPENDED:  # a saved state is discarded, as 'force' promises
            session.run(["discardstate", vm.id], vm=vm.id)
            return
        power(session, vm, "poweroff")
        return
    if vm.power_state is PowerState.PAUSED:  # a paused guest cannot see the power button
        power(session, vm, "resume")
    power(session, vm, "acpipowerbutton")

    def read() -> TaskInfo:
        state = _parse.machinereadable(session.run(["showvminfo", vm.id, "--machinereadable"])).get("VMState", "")
        return TaskInfo(TaskState.SUCCESS if STATES.get(state) is PowerState.STOPPED else TaskState.RUNNING)

    wait_for(read, timeout=timeout, what=f"the guest of VM {vm.name!r} shutting down", interval=0.2)


def reconfigure_vm(session: Session, vm: VM, cpus: int | None, memory_mib: int | None) -> None:
    args = ["modifyvm", vm.id]
    if cpus is not None:
        args += ["--cpus", str(cpus)]
    if memory_mib is not None:
        args += ["--memory", str(memory_mib)]
    session.run(args, vm=vm.id)


def clone_vm(session: Session, vm: VM, name: str, linked: bool) -> VM:
    """clonevm --register; a linked clone comes from a snapshot taken for it (VirtualBox links to snapshots),
    recorded by UUID on both VMs (see ``_linked``); undone by UUID on failure."""
    with Rollback() as undo, session.serial(vm.id):
        args = ["clonevm", vm.id, "--name", name, "--register"]
        snap_id = ""
        if linked:
            out = session.run(
                [
                    "snapshot",
                    vm.id,
                    "take",
                    f"linked clone base for {name}",
                    "--description",
                    f"the state the linked clone {name!r} was made from",
                ]
            )
            snap = re.search(r"UUID: ([0-9a-fA-F-]{36})", out)
            if not snap:
                raise errors.BackendError(f"snapshot take did not report a UUID: {out[-200:]!r}")
            snap_id = snap.group(1).lower()
            undo.push(lambda: session.run(["snapshot", vm.id, "delete", snap_id]), f"delete snapshot {snap_id}")
            args += ["--snapshot", snap_id, "--options", "link"]
        session.run(args)
        clone = get_vm(session, name)
        undo.push(lambda: session.run(["unregistervm", clone.id, "--delete"]), f"remove VM {clone.id}")
        _linked.forget_inherited(session, clone.id)
        if snap_id:
            undo.push(lambda: session.run(["setextradata", vm.id, _linked.MARK_PREFIX + snap_id]), f"unmark {snap_id}")
            _linked.record(session, vm.id, snap_id, clone.id)
        return clone
