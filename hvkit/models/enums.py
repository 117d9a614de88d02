"""Enumerations shared by the models."""

from __future__ import annotations

import enum

__all__ = ["DiskBus", "DiskFormat", "Firmware", "GuestOS", "NicModel", "PowerState", "TaskState"]


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
