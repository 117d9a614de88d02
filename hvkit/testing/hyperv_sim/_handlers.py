"""Template id and version -> the operation that runs it on the host model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._ops import (
    P,
    inventory,
    snapshot_create,
    snapshot_delete,
    snapshot_list,
    snapshot_revert,
    vm_create,
    vm_delete,
    vm_get,
    vm_power,
    vm_reconfigure,
)
from ._ops_storage import (
    host_metrics,
    snapshot_export,
    vm_clone,
    vm_metrics,
    vm_migrate,
    volume_create,
    volume_delete,
    volume_export,
    volume_list,
)
from ._state import HostState

__all__ = ["HANDLERS"]

HANDLERS: dict[tuple[str, int], Callable[[HostState, P], Any]] = {
    ("inventory", 1): inventory,
    ("vm.get", 1): vm_get,
    ("vm.create", 1): vm_create,
    ("vm.delete", 1): vm_delete,
    ("vm.power", 1): vm_power,
    ("vm.reconfigure", 1): vm_reconfigure,
    ("vm.clone", 1): vm_clone,
    ("vm.migrate", 2): vm_migrate,
    ("vm.metrics", 1): vm_metrics,
    ("snapshot.list", 1): snapshot_list,
    ("snapshot.create", 1): snapshot_create,
    ("snapshot.revert", 1): snapshot_revert,
    ("snapshot.delete", 1): snapshot_delete,
    ("snapshot.export", 1): snapshot_export,
    ("volume.list", 2): volume_list,
    ("volume.create", 1): volume_create,
    ("volume.delete", 2): volume_delete,
    ("volume.export", 1): volume_export,
    ("host.metrics", 1): host_metrics,
}
