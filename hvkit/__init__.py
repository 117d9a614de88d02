"""hvkit: one VM / host / storage API over every major hypervisor.

>>> import hvkit
>>> with hvkit.connect("sim://") as hv:
...     vm = hv.vms.create(hvkit.VMSpec(name="web-1", cpus=2, memory_mib=2048))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors
from ._connect import connect
from ._registry import register
from ._url import URL, parse_url
from .capabilities import Capability
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

if TYPE_CHECKING:
    from . import fleet as fleet
    from . import images as images
    from . import migration as migration
    from . import replication as replication
    from .fleet import Fleet as Fleet

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

# the fleet planner, images, migration and replication load on first use: ``import hvkit`` stays light
# (each CLI run and each Ansible task pays it)
_LAZY_MODULES = ("fleet", "images", "migration", "replication")


def __getattr__(name: str) -> Any:
    if name == "Fleet":
        return importlib.import_module(".fleet", __name__).Fleet
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'hvkit' has no attribute {name!r}")
