"""The state of one simulated hypervisor: hosts, pools (real image directories), networks, VMs.

Several SimBackend connections to the same name share one world. With a state directory the world
is saved as JSON after every change and loaded again by the next process.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...driver import ConnectOptions
from ...errors import InvalidSpec
from ._faults import Faults

__all__ = ["World", "world_for"]

_worlds: dict[str, World] = {}
_worlds_lock = threading.Lock()
Listener = Callable[[dict[str, Any]], None]
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")  # one path-safe folder name: no '/', '..', NUL


class World:
    """Mutable state of one simulated hypervisor; guard every access with ``lock``."""

    def __init__(
        self,
        name: str,
        root: Path,
        *,
        persistent: bool,
        hosts: int,
        host_cpus: int,
        host_memory_mib: int,
        pool_gib: int,
    ) -> None:
        self.name = name
        self.root = root
        self.persistent = persistent
        self.lock = threading.RLock()
        self.faults = Faults()
        self.listeners: list[Listener] = []
        self.counter = itertools.count(1)
        self.hosts: dict[str, dict[str, Any]] = {}
        self.pools: dict[str, dict[str, Any]] = {}
        self.networks: dict[str, dict[str, Any]] = {}
        self.vms: dict[str, dict[str, Any]] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        if not self._load():
            self._populate(hosts, host_cpus, host_memory_mib, pool_gib)
            self.save()

    # -- set-up -------------------------------------------------------------------------------------
    def _populate(self, hosts: int, cpus: int, memory_mib: int, pool_gib: int) -> None:
        for i in range(1, hosts + 1):
            self.hosts[f"host-{i}"] = {
                "id": f"host-{i}",
                "name": f"sim-host-{i}",
                "sockets": 2,
                "cores": cpus // 2 or 1,
                "threads": cpus,
                "memory_mib": memory_mib,
                "maintenance": False,
            }
        for name, kind, shared, formats in (
            ("default", "dir", True, ["qcow2", "raw", "vmdk", "vdi", "vhdx", "vpc"]),
            ("fast", "dir", True, ["raw", "qcow2"]),
        ):
            (self.root / "pools" / name).mkdir(parents=True, exist_ok=True)
            self.pools[name] = {
                "id": name,
                "name": name,
                "type": kind,
                "shared": shared,
                "formats": formats,
                "capacity": pool_gib * 1024**3,
            }
        self.networks["default"] = {
            "id": "default",
            "name": "default",
            "type": "nat",
            "bridge": "simbr0",
            "subnet": "192.168.122",
        }
        self.networks["lan"] = {
            "id": "lan",
            "name": "lan",
            "type": "bridge",
            "bridge": "simbr1",
            "subnet": "10.20.0",
            "vlan": 20,
        }

    def pool_dir(self, pool: str) -> Path:
        return self.root / "pools" / pool

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"

    # -- persistence ---------------------------------------------------------------------------------
    def _state_file(self) -> Path:
        return self.root / "state.json"

    def _load(self) -> bool:
        path = self._state_file()
        if not (self.persistent and path.is_file()):
            return False
        data = json.loads(path.read_text())
        self.hosts, self.pools, self.networks = data["hosts"], data["pools"], data["networks"]
        self.vms, self.volumes = data["vms"], data["volumes"]
        self.counter = itertools.count(data["counter"])
        return True

    def save(self) -> None:
        if not self.persistent:
            return
        with self.lock:
            counter = next(self.counter)
            self.counter = itertools.count(counter)
            data = {
                "hosts": self.hosts,
                "pools": self.pools,
                "networks": self.networks,
                "vms": self.vms,
                "volumes": self.volumes,
                "counter": counter,
            }
            tmp = self._state_file().with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(self._state_file())

    # -- events --------------------------------------------------------------------------------------
    def emit(self, vm: dict[str, Any], event: str) -> None:
        payload = {"vm": vm["id"], "name": vm["name"], "event": event, "state": vm["state"]}
        for listener in list(self.listeners):
            try:
                listener(payload)
            except Exception:  # a listener's bug must not break the hypervisor
                pass


def world_for(options: ConnectOptions) -> World:
    """The world named by ``sim://NAME`` (default: "default"), created on first use."""
    name = options.url.host or "default"
    if not _NAME.fullmatch(name):
        raise InvalidSpec(
            f"sim name {name[:70]!r} must be one folder name: ASCII letters, digits, '_', '.', '-' (not first), 1-64"
        )
    state_dir = options.option("state_dir") or os.environ.get("HVKIT_SIM_STATE_DIR")
    if state_dir and (not isinstance(state_dir, str | os.PathLike) or "\x00" in str(state_dir)):
        raise InvalidSpec(f"sim state_dir must be a folder path, got a {type(state_dir).__name__}")
    sizes = {
        "hosts": options.int_option("hosts", 3, low=1, high=1024),
        "host_cpus": options.int_option("host_cpus", 32, low=1, high=4096),
        "host_memory_mib": options.int_option("host_memory_mib", 131072, low=256, high=1 << 32),
        "pool_gib": options.int_option("pool_gib", 4096, low=1, high=1 << 30),
    }
    with _worlds_lock:
        key = f"{name}@{state_dir or ''}"
        if key in _worlds:
            return _worlds[key]
        if state_dir:
            try:
                root = Path(state_dir).expanduser() / name
                root.mkdir(parents=True, exist_ok=True)
            except (OSError, RuntimeError) as exc:  # a file in the way, no permission, an unknown ~user
                raise InvalidSpec(f"sim state_dir {str(state_dir)[:200]!r} cannot be used: {exc}") from None
            persistent = True
        else:
            root = Path(tempfile.mkdtemp(prefix=f"hvkit-sim-{name}-"))
            atexit.register(shutil.rmtree, root, True)
            persistent = False
        world = World(name, root, persistent=persistent, **sizes)
        _worlds[key] = world
        return world


def forget(name: str) -> None:
    """Drop in-process worlds named ``name`` (tests use it to start from scratch)."""
    with _worlds_lock:
        for key in [k for k in _worlds if k.split("@", 1)[0] == name]:
            world = _worlds.pop(key)
            if not world.persistent:
                shutil.rmtree(world.root, ignore_errors=True)
