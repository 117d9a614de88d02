"""Enumerations shared by the models."""

from __future__ import annotations

import enum
from typing import Any, TypeVar

from ..errors import InvalidSpec
from ._checks import shown

__all__ = ["DiskBus", "DiskFormat", "Firmware", "GuestOS", "NicModel", "PowerState", "TaskState", "to_enum"]

E = TypeVar("E", bound=enum.Enum)


def to_enum(kind: type[E], value: Any, what: str = "") -> E:
    """``value`` as a member of ``kind`` (a member, or its value); InvalidSpec listing the choices otherwise.

    The one enum coercion: specs, managers, migration and the CLI all use it.
    """
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except (ValueError, TypeError):
        choices = ", ".join(str(m.value) for m in kind)
        prefix = f"{what} " if what else ""
        raise InvalidSpec(f"{prefix}{shown(value)} is not a valid {kind.__name__} (one of: {choices})") from None


class PowerState(enum.Enum):
    """Every distinct state a VM can be in; paused and suspended are never folded into stopped."""

    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"  # halted in memory
    SUSPENDED = "suspended"  # state saved to disk, not running
    CRASHED = "crashed"
    STARTING = "starting"
    STOPPING = "stopping"
    MIGRATING = "migrating"
    UNKNOWN = "unknown"


class Firmware(enum.Enum):
    BIOS = "bios"
    UEFI = "uefi"


class DiskFormat(enum.Enum):
    """Image formats; values are qemu-img format names."""

    RAW = "raw"
    QCOW2 = "qcow2"
    VMDK = "vmdk"
    VHDX = "vhdx"
    VHD = "vpc"
    VDI = "vdi"


class DiskBus(enum.Enum):
    VIRTIO = "virtio"
    SCSI = "scsi"
    SATA = "sata"
    IDE = "ide"
    NVME = "nvme"


class NicModel(enum.Enum):
    VIRTIO = "virtio"
    E1000 = "e1000"
    E1000E = "e1000e"
    VMXNET3 = "vmxnet3"
    RTL8139 = "rtl8139"


class GuestOS(enum.Enum):
    """Guest operating system family."""

    LINUX = "linux"
    WINDOWS = "windows"
    BSD = "bsd"
    OTHER = "other"


class TaskState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self in (TaskState.SUCCESS, TaskState.ERROR, TaskState.CANCELLED)
