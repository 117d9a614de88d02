"""The toy hypervisor's state: one world per URL host name, shared by every connection to it."""

from __future__ import annotations

import threading
from typing import Any

GiB = 1024**3

_worlds: dict[str, World] = {}
_lock = threading.Lock()


class World:
    """VMs and volumes as plain records; ``lock`` guards them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.RLock()
        self.vms: dict[str, dict[str, Any]] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.pool_bytes = 100 * GiB


def world(name: str) -> World:
    with _lock:
        return _worlds.setdefault(name, World(name))
