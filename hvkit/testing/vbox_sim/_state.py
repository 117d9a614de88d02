"""The stand-in's state: one JSON file in a folder, read and written under an exclusive file lock.

Every ``VBoxManage`` process holds the lock for its whole run, so concurrent processes see each other's
changes in order, as VBoxSVC serialises them. Disk images are real files written with qemu-img.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["STATE_ENV", "VERSION_ENV", "Sim", "locked", "new_state", "now_text"]

STATE_ENV = "HVKIT_VBOX_SIM_STATE"
VERSION_ENV = "HVKIT_VBOX_SIM_VERSION"
FULL_VERSIONS = {"6.1": "6.1.50r161033", "7.0": "7.0.10r158379"}
QEMU_FORMAT = {"VDI": "vdi", "VMDK": "vmdk", "VHD": "vpc"}
EXTENSION = {"VDI": "vdi", "VMDK": "vmdk", "VHD": "vhd"}


def now_text() -> str:
    """VMStateChangeTime's form: UTC, milliseconds padded to nine digits, the trailing 'Z' cut."""
    t = dt.datetime.now(dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}000000"


def new_state(root: Path, version: str = "7.0") -> dict[str, Any]:
    """A fresh host: NAT, one bridged interface, one host-only interface, one NAT network, no VMs."""
    return {
        "config": {"version": version, "faults": {}},
        "machine_folder": str(root / "VirtualBox VMs"),
        "vms": [],
        "media": [],
        "host": {
            "cpus": 8,
            "cores": 4,
            "mhz": 2600,
            "model": "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz",
            "memory": 32000,
            "available": 21000,
            "os": "Linux",
            "os_version": "6.1.0-13-amd64",
        },
        "bridgedifs": [
            {
                "name": "eth0",
                "guid": "30687465-0000-4000-8000-525400123456",
                "ip": "192.0.2.10",
                "mask": "255.255.255.0",
                "ipv6": "",
                "ipv6len": 0,
                "mac": "52:54:00:12:34:56",
                "status": "Up",
            },
        ],
        "hostonlyifs": [
            {
                "name": "vboxnet0",
                "guid": "786f6276-656e-4074-8000-0a0027000000",
                "ip": "192.168.56.1",
                "mask": "255.255.255.0",
                "ipv6": "",
                "ipv6len": 0,
                "mac": "0a:00:27:00:00:00",
                "status": "Up",
            },
            {
                "name": "vboxnet1",
                "guid": "786f6276-656e-4174-8000-0a0027000001",
                "ip": "192.168.33.1",
                "mask": "255.255.255.0",
                "ipv6": "",
                "ipv6len": 0,
                "mac": "0a:00:27:00:00:01",
                "status": "Up",
            },
        ],
        "natnets": [
            {
                "name": "NatNetwork",
                "ip": "10.0.2.1",
                "network": "10.0.2.0/24",
                "ipv6": "No",
                "prefix": "fd17:625c:f037:2::/64",
                "dhcp": "Yes",
                "enabled": "Yes",
                "loopback": ["127.0.0.1=2"],
            },
        ],
        "metrics": {"setup": False},
        "mac_counter": 0x10,
    }


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[dict[str, Any]]:
    """Hold the folder's lock; yield the state; write it back when the block ends without an error."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = folder / "state.json"
        state = json.loads(path.read_text()) if path.exists() else new_state(folder)
        before = json.dumps(state, sort_keys=True)
        yield state
        after = json.dumps(state, sort_keys=True)
        if after != before:
            tmp = folder / f"state.json.{os.getpid()}"
            tmp.write_text(json.dumps(state, indent=1))
            tmp.replace(path)


class Sim:
    """Lookups over the state dict that every command shares."""

    def __init__(self, state: dict[str, Any], version: str) -> None:
        self.state = state
        self.version = version

    @property
    def v7(self) -> bool:
        return self.version == "7.0"

    # -- VMs --------------------------------------------------------------------------------------
    def find_vm(self, ref: str) -> dict[str, Any] | None:
        for vm in self.state["vms"]:
            if vm["uuid"] == ref.strip("{}") or vm["name"] == ref:
                found: dict[str, Any] = vm
                return found
        return None

    def new_mac(self) -> str:
        self.state["mac_counter"] += 1
        n = self.state["mac_counter"]
        return f"080027{(n >> 16) & 0xFF:02X}{(n >> 8) & 0xFF:02X}{n & 0xFF:02X}"

    # -- media ------------------------------------------------------------------------------------
    def find_medium(self, ref: str) -> dict[str, Any] | None:
        key = ref.strip("{}")
        for medium in self.state["media"]:
            if medium["uuid"] == key or medium["location"] == ref:
                hit: dict[str, Any] = medium
                return hit
        absolute = str(Path(ref).absolute())
        for medium in self.state["media"]:
            if medium["location"] == absolute:
                same: dict[str, Any] = medium
                return same
        return None

    def add_medium(self, location: str, fmt: str, capacity: int, parent: str | None = None) -> dict[str, Any]:
        medium = {"uuid": str(uuid.uuid4()), "location": location, "format": fmt, "capacity": capacity,
                  "parent": parent}  # fmt: skip
        self.state["media"].append(medium)
        return medium

    def users_of(self, medium_uuid: str) -> list[dict[str, Any]]:
        """VMs with the medium attached in their current state."""
        return [vm for vm in self.state["vms"] if any(a.get("medium") == medium_uuid for a in vm["attachments"])]

    def children_of(self, medium_uuid: str) -> list[dict[str, Any]]:
        return [m for m in self.state["media"] if m.get("parent") == medium_uuid]

    def ordered_media(self) -> list[dict[str, Any]]:
        """Depth-first: each base medium followed by its differencing children."""
        out: list[dict[str, Any]] = []

        def walk(medium: dict[str, Any]) -> None:
            out.append(medium)
            for child in self.children_of(medium["uuid"]):
                walk(child)

        for medium in self.state["media"]:
            if not medium.get("parent"):
                walk(medium)
        return out

    def faults(self) -> dict[str, Any]:
        faults: dict[str, Any] = self.state["config"].setdefault("faults", {})
        return faults
