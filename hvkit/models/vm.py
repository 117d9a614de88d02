"""What a hypervisor reports about VMs: VM, Disk, Nic, Snapshot, Console, VMMetrics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs

from ._fields import extra_field, tags_field, to_tuple
from .enums import DiskBus, DiskFormat, Firmware, GuestOS, NicModel, PowerState

__all__ = ["VM", "Console", "Disk", "Nic", "Snapshot", "VMMetrics"]


@attrs.frozen
class Disk:
    """A disk attached to a VM."""

    name: str  # device name or label, unique within the VM (vda, scsi0, "Hard disk 1")
    size_bytes: int
    format: DiskFormat | None = None
    bus: DiskBus | None = None
    pool: str | None = None
    volume: str | None = None  # the volume id, usable with hv.volumes
    path: str | None = None  # where the image lives on its host, when the vendor says


@attrs.frozen
class Nic:
    mac: str
    network: str | None = None
    model: NicModel | None = None
    name: str | None = None


@attrs.frozen
class VM:
    """A VM as read at one moment; ``hv.vms.get(vm)`` reads it again."""

    id: str
    name: str
    power_state: PowerState
    cpus: int
    memory_mib: int
    uuid: str | None = None
    disks: tuple[Disk, ...] = attrs.field(default=(), converter=to_tuple)
    nics: tuple[Nic, ...] = attrs.field(default=(), converter=to_tuple)
    host: str | None = None
    firmware: Firmware = Firmware.BIOS
    guest_os: GuestOS | None = None
    notes: str = ""
    tags: frozenset[str] = tags_field()
    ip_addresses: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    template: bool = attrs.field(default=False, kw_only=True)
    hypervisor: str | None = attrs.field(default=None, kw_only=True)  # set by Fleet: where it lives
    # when the VM entered its power state, where the backend says (aware, UTC); None: unknown
    state_since: dt.datetime | None = attrs.field(default=None, kw_only=True)
    extra: Mapping[str, Any] = extra_field()

    @property
    def disk_bytes(self) -> int:
        return sum(d.size_bytes for d in self.disks)


@attrs.frozen
class Snapshot:
    id: str
    name: str
    vm: str  # VM id
    parent: str | None = None  # parent snapshot id; None at the root of the tree
    created: dt.datetime | None = None
    description: str = ""
    memory: bool = False
    current: bool = False


@attrs.frozen
class Console:
    """Where to reach a VM's console. ``password`` never shows in reprs."""

    protocol: str  # vnc, spice, webmks, vmrc, serial
    host: str | None = None
    port: int | None = None
    url: str | None = attrs.field(default=None, repr=False)
    password: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class VMMetrics:
    """Counters at one moment; ``None`` where the backend cannot tell."""

    vm: str
    timestamp: dt.datetime
    cpu_time_ns: int | None = None
    cpu_usage: float | None = None  # 0.0 .. 1.0 of the VM's vCPUs
    memory_used_mib: int | None = None
    disk_read_bytes: int | None = None
    disk_write_bytes: int | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
