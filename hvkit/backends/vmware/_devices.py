"""Virtual hardware: VMSpec -> VirtualDeviceConfigSpec list, and VirtualDevice list -> Disk/Nic models."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyVmomi import vim as _vim

from ...errors import InvalidSpec
from ...models import Disk, DiskBus, DiskFormat, DiskSpec, GuestOS, Nic, NicModel, NicSpec

vim: Any = _vim  # pyVmomi's generated types are untyped for mypy

__all__ = ["DISKS_PER_BUS", "GUEST_IDS", "NIC_MODELS", "build_devices", "guest_family", "read_disks", "read_nics"]

GUEST_IDS = {
    GuestOS.LINUX: "otherLinux64Guest",
    GuestOS.WINDOWS: "windows9Server64Guest",
    GuestOS.BSD: "freebsd64Guest",
    GuestOS.OTHER: "otherGuest64",
}

_NIC_TYPES: dict[NicModel, type] = {
    NicModel.VIRTIO: vim.vm.device.VirtualVmxnet3,  # the paravirtual NIC of VMware
    NicModel.VMXNET3: vim.vm.device.VirtualVmxnet3,
    NicModel.E1000: vim.vm.device.VirtualE1000,
    NicModel.E1000E: vim.vm.device.VirtualE1000e,
}
_NIC_MODELS: list[tuple[type, NicModel]] = [
    (vim.vm.device.VirtualVmxnet3, NicModel.VMXNET3),
    (vim.vm.device.VirtualE1000e, NicModel.E1000E),
    (vim.vm.device.VirtualE1000, NicModel.E1000),
]
NIC_MODELS = frozenset(m for _, m in _NIC_MODELS)
_BUSES: list[tuple[type, DiskBus]] = [
    (vim.vm.device.VirtualSCSIController, DiskBus.SCSI),
    (vim.vm.device.VirtualAHCIController, DiskBus.SATA),
    (vim.vm.device.VirtualIDEController, DiskBus.IDE),
    (vim.vm.device.VirtualNVMEController, DiskBus.NVME),
]
_LINUX_HINTS = (
    "linux",
    "rhel",
    "centos",
    "ubuntu",
    "debian",
    "sles",
    "suse",
    "fedora",
    "oracle",
    "photon",
    "coreos",
    "asianux",
    "mandr",
    "turbo",
    "rocky",
    "alma",
    "amazon",
)


def guest_family(guest_id: str | None) -> GuestOS | None:
    if not guest_id:
        return None
    text = guest_id.lower()
    if text.startswith("win"):
        return GuestOS.WINDOWS
    if "bsd" in text:
        return GuestOS.BSD
    if any(hint in text for hint in _LINUX_HINTS):
        return GuestOS.LINUX
    return GuestOS.OTHER


def _controller_for(bus: DiskBus, key: int, bus_number: int) -> Any:
    if bus in (DiskBus.VIRTIO, DiskBus.SCSI):
        ctrl = vim.vm.device.ParaVirtualSCSIController()
        ctrl.sharedBus = vim.vm.device.VirtualSCSIController.Sharing.noSharing
    elif bus is DiskBus.SATA:
        ctrl = vim.vm.device.VirtualAHCIController()
    elif bus is DiskBus.NVME:
        ctrl = vim.vm.device.VirtualNVMEController()
    else:
        ctrl = vim.vm.device.VirtualIDEController()
    ctrl.key = key
    ctrl.busNumber = bus_number
    return ctrl


_SLOTS = {DiskBus.SCSI: 15, DiskBus.SATA: 30, DiskBus.NVME: 15, DiskBus.IDE: 2}
# one controller per bus; on SCSI, unit 7 is the controller itself
DISKS_PER_BUS = {**_SLOTS, DiskBus.SCSI: _SLOTS[DiskBus.SCSI] - 1}


def _bus_of(spec_bus: DiskBus) -> DiskBus:
    return DiskBus.SCSI if spec_bus is DiskBus.VIRTIO else spec_bus


def build_devices(
    disks: Sequence[DiskSpec],
    nics: Sequence[NicSpec],
    datastore_of: Callable[[str], Any],
    volume_path: Callable[[str], str],
    network_backing: Callable[[str], Any],
) -> list[Any]:
    """Device changes for a new VM: one controller per bus used, then disks, then NICs."""
    changes: list[Any] = []
    controllers: dict[DiskBus, tuple[int, int]] = {}  # bus -> (controller key, next unit)
    next_key = -100
    for disk in disks:
        bus = _bus_of(disk.bus)
        if bus not in controllers:
            ctrl = _controller_for(bus, next_key, 0)
            changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=ctrl))
            controllers[bus] = (next_key, 0)
            next_key -= 1
        key, unit = controllers[bus]
        if bus is DiskBus.SCSI and unit == 7:  # unit 7 is the SCSI controller itself
            unit += 1
        if unit >= _SLOTS[bus]:
            raise InvalidSpec(f"too many {bus.value} disks for one VMware controller (at most {_SLOTS[bus]})")
        controllers[bus] = (key, unit + 1)
        device = vim.vm.device.VirtualDisk(key=next_key, controllerKey=key, unitNumber=unit)
        next_key -= 1
        backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent")
        spec = vim.vm.device.VirtualDeviceSpec(operation="add", device=device)
        if disk.volume is not None:
            backing.fileName = volume_path(disk.volume)
        else:
            if disk.format not in (None, DiskFormat.VMDK):
                raise InvalidSpec(f"VMware disks are vmdk; {disk.format.value} was asked")
            datastore = datastore_of(disk.pool or "")
            backing.fileName = ""
            backing.datastore = datastore
            backing.thinProvisioned = True
            device.capacityInKB = disk.size_bytes // 1024
            device.capacityInBytes = disk.size_bytes
            spec.fileOperation = "create"
        device.backing = backing
        changes.append(spec)
    for nic in nics:
        card = _NIC_TYPES.get(nic.model)
        if card is None:
            ok = ", ".join(sorted(m.value for m in _NIC_TYPES))
            raise InvalidSpec(f"VMware has no {nic.model.value} NIC model (one of: {ok})")
        device = card(key=next_key)
        next_key -= 1
        device.backing = network_backing(nic.network)
        device.connectable = vim.vm.device.VirtualDevice.ConnectInfo(
            startConnected=True, allowGuestControl=True, connected=False
        )
        if nic.mac:
            device.addressType = "manual"
            device.macAddress = nic.mac
        else:
            device.addressType = "generated"
        changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=device))
    return changes


def read_disks(devices: Sequence[Any], datastore_names: Mapping[str, str]) -> list[Disk]:
    by_key = {d.key: d for d in devices}
    out = []
    for dev in devices:
        if not isinstance(dev, vim.vm.device.VirtualDisk):
            continue
        ctrl = by_key.get(dev.controllerKey)
        bus = next((b for kind, b in _BUSES if isinstance(ctrl, kind)), None)
        backing = dev.backing
        path = getattr(backing, "fileName", None) or None
        ds = getattr(backing, "datastore", None)
        pool = datastore_names.get(ds._moId) if ds is not None else None
        if pool is None and path and path.startswith("["):
            pool = path[1 : path.index("]")]
        size = int(dev.capacityInBytes or 0) or int(dev.capacityInKB or 0) * 1024
        label = dev.deviceInfo.label if dev.deviceInfo is not None and dev.deviceInfo.label else f"disk-{dev.key}"
        out.append(
            Disk(name=label, size_bytes=size, format=DiskFormat.VMDK, bus=bus, pool=pool, volume=path, path=path)
        )
    return out


def read_nics(devices: Sequence[Any], network_names: Mapping[str, str], portgroup_keys: Mapping[str, str]) -> list[Nic]:
    out = []
    for dev in devices:
        if not isinstance(dev, vim.vm.device.VirtualEthernetCard):
            continue
        model = next((m for kind, m in _NIC_MODELS if isinstance(dev, kind)), None)
        backing = dev.backing
        network: str | None = None
        if isinstance(backing, vim.vm.device.VirtualEthernetCard.NetworkBackingInfo):
            net = backing.network
            network = (network_names.get(net._moId) if net is not None else None) or backing.deviceName
        elif isinstance(backing, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
            port = backing.port
            network = portgroup_keys.get(port.portgroupKey) if port is not None else None
        elif isinstance(backing, vim.vm.device.VirtualEthernetCard.OpaqueNetworkBackingInfo):
            network = backing.opaqueNetworkId
        label = dev.deviceInfo.label if dev.deviceInfo is not None else None
        out.append(Nic(mac=(dev.macAddress or "").lower(), network=network, model=model, name=label))
    return out
