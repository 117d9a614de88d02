"""attrs models: frozen values read from, or sent to, a hypervisor."""

from .enums import DiskBus, DiskFormat, Firmware, GuestOS, NicModel, PowerState, TaskState
from .infra import Host, HostMetrics, Network, StoragePool, Volume
from .spec import CloudInit, DiskSpec, NicSpec, VMSpec
from .vm import VM, Console, Disk, Nic, Snapshot, VMMetrics

__all__ = [
    "VM",
    "CloudInit",
    "Console",
    "Disk",
    "DiskBus",
    "DiskFormat",
    "DiskSpec",
    "Firmware",
    "GuestOS",
    "Host",
    "HostMetrics",
    "Network",
    "Nic",
    "NicModel",
    "NicSpec",
    "PowerState",
    "Snapshot",
    "StoragePool",
    "TaskState",
    "VMMetrics",
    "VMSpec",
    "Volume",
]
