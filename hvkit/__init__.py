"""hvkit: one VM / host / storage API over every major hypervisor.

>>> import hvkit
>>> with hvkit.connect("sim://") as hv:
...     vm = hv.vms.create(hvkit.VMSpec(name="web-1", cpus=2, memory_mib=2048))
"""

from __future__ import annotations

from . import errors
from . import images as images  # offers hv.images
from ._connect import connect
from ._registry import register
from ._url import URL, parse_url
from .capabilities import Capability
from .fleet import Fleet
from .hypervisor import Hypervisor
from .models import (
    VM,
    CloudInit,
    Console,
    Disk,
    DiskBus,
    DiskFormat,
    DiskSpec,
    Firmware,
    GuestOS,
    Host,
    HostMetrics,
    Network,
    Nic,
    NicModel,
    NicSpec,
    PowerState,
    Snapshot,
    StoragePool,
    TaskState,
    VMMetrics,
    VMSpec,
    Volume,
)
from .tasks import Task, TaskInfo

__version__ = "0.1.0"

__all__ = [
    "URL",
    "VM",
    "Capability",
    "CloudInit",
    "Console",
    "Disk",
    "DiskBus",
    "DiskFormat",
    "DiskSpec",
    "Firmware",
    "Fleet",
    "GuestOS",
    "Host",
    "HostMetrics",
    "Hypervisor",
    "Network",
    "Nic",
    "NicModel",
    "NicSpec",
    "PowerState",
    "Snapshot",
    "StoragePool",
    "Task",
    "TaskInfo",
    "TaskState",
    "VMMetrics",
    "VMSpec",
    "Volume",
    "__version__",
    "connect",
    "errors",
    "parse_url",
    "register",
]
