"""The sim connection: the world it opened, faults, tasks, records and their models (what the areas take)."""

from __future__ import annotations

import datetime as dt
import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...driver import Rollback, Task, qemuimg
from ...errors import AlreadyExists, InsufficientCapacity, InvalidSpec, NotFound
from ...models import (
    VM,
    Disk,
    DiskBus,
    DiskFormat,
    Firmware,
    GuestOS,
    Nic,
    NicModel,
    PowerState,
    Volume,
)
from ._tasks import start_task
from ._world import World, world_for

__all__ = ["CHUNK", "EXT", "SimSession", "epoch_now"]

CHUNK = 1024 * 1024
EXT = {"vpc": "vhd"}


def epoch_now() -> float:
    return time.time()


class SimSession:
    """One connection to a sim world: what every area function takes instead of the backend."""

    kind = "sim"

    def __init__(self, options: Any) -> None:
        self.options = options
        # checked before a world opens
        self.task_delay: float = options.float_option("task_delay", 0.02, low=0, high=3600)
        self.world: World = world_for(options)

    @property
    def faults(self) -> Any:
        return self.world.faults

    @property
    def version(self) -> str:
        return "hvkit-sim 1.0"

    def connect(self) -> None:
        self.world.faults.check("connect")

    def enter(self, operation: str) -> None:
        self.world.faults.check(operation)

    def task(self, operation: str, target: str, effect: Callable[[], Any]) -> Task:
        return start_task(operation, target, self.world.faults.duration(operation, self.task_delay), effect)

    def vm(self, vm_id: str) -> dict[str, Any]:
        try:
            return self.world.vms[vm_id]
        except KeyError:
            raise NotFound(f"no VM {vm_id!r} on sim://{self.world.name}") from None

    def changed(self, vm: dict[str, Any] | None = None, event: str | None = None) -> None:
        self.world.save()
        if vm is not None and event is not None:
            self.log(vm, f"{event} ({vm['state']})")
            self.world.emit(vm, event)

    def log(self, vm: dict[str, Any], line: str) -> None:
        path = self.world.root / "console" / f"{vm['id']}.log"
        path.parent.mkdir(exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} {vm['name']}: {line}\n")

    def volume_model(self, v: dict[str, Any]) -> Volume:
        path = Path(v["path"])
        allocation = path.stat().st_blocks * 512 if path.exists() else 0
        return Volume(
            v["id"],
            v["name"],
            v["pool"],
            v["capacity"],
            allocation,
            DiskFormat(v["format"]),
            str(path),
            v.get("backing"),
        )

    def vm_model(self, vm: dict[str, Any]) -> VM:
        disks = []
        for d in vm["disks"]:
            v = self.world.volumes.get(d["volume"])
            disks.append(
                Disk(
                    d["name"],
                    v["capacity"] if v else 0,
                    DiskFormat(v["format"]) if v else None,
                    DiskBus(d["bus"]),
                    v["pool"] if v else None,
                    d["volume"],
                    v["path"] if v else None,
                )
            )
        nics = [Nic(n["mac"], n["network"], NicModel(n["model"]), n["name"]) for n in vm["nics"]]
        state = PowerState(vm["state"])
        if state in (PowerState.RUNNING, PowerState.PAUSED) and self.world.hosts.get(vm["host"] or "", {}).get("down"):
            state = PowerState.UNKNOWN  # its host is down (set_host_down): nobody knows
        return VM(
            vm["id"],
            vm["name"],
            state,
            vm["cpus"],
            vm["memory_mib"],
            vm["uuid"],
            disks,
            nics,
            vm["host"],
            Firmware(vm["firmware"]),
            GuestOS(vm["guest_os"]),
            vm["notes"],
            tags=frozenset(vm["tags"]),
            ip_addresses=tuple(vm["ips"]),
            template=vm["template"],
            state_since=dt.datetime.fromtimestamp(vm["state_since"], dt.UTC),
            extra={"sim.load": vm["load"]},
        )

    def set_state(self, vm: dict[str, Any], state: PowerState, event: str) -> None:
        if vm["state"] == PowerState.RUNNING.value and state is not PowerState.RUNNING:
            vm["run_seconds"] += epoch_now() - vm["state_since"]
        vm["state"] = state.value
        vm["state_since"] = epoch_now()
        if state in (PowerState.STOPPED, PowerState.SUSPENDED, PowerState.CRASHED):
            vm["ips"] = []
        self.changed(vm, event)

    def host_usage(self) -> dict[str, tuple[float, int]]:
        usage = {h: [0.0, 0] for h in self.world.hosts}
        for vm in self.world.vms.values():
            if vm["state"] in (PowerState.RUNNING.value, PowerState.PAUSED.value) and vm["host"] in usage:
                load = vm["load"] if vm["state"] == PowerState.RUNNING.value else 0.0
                usage[vm["host"]][0] += vm["cpus"] * load
                usage[vm["host"]][1] += vm["memory_mib"]
        return {h: (min(1.0, u[0] / self.world.hosts[h]["threads"]), int(u[1])) for h, u in usage.items()}

    def new_mac(self, used: set[str]) -> str:
        while True:
            mac = "52:54:00:" + ":".join(f"{b:02x}" for b in os.urandom(3))
            if mac not in used:
                return mac

    def host_id(self, ref: str) -> str:
        for h in self.world.hosts.values():
            if ref in (h["id"], h["name"]):
                return str(h["id"])
        raise NotFound(f"no host {ref!r}")

    def least_loaded_host(self) -> str:
        usage = self.host_usage()
        candidates = [h for h in self.world.hosts.values() if not h["maintenance"]] or list(self.world.hosts.values())
        return str(min(candidates, key=lambda h: (usage[h["id"]][1] / h["memory_mib"], h["id"]))["id"])

    def drop_if_unused(self, vol_id: str) -> None:
        """Remove a VM-private volume no disk, overlay, base list or snapshot refers to any more."""
        w = self.world
        referenced = any(o.get("backing") == vol_id for o in w.volumes.values()) or any(
            vol_id in (d["volume"] for d in vm["disks"])
            or vol_id in vm.get("bases", ())
            or any(vol_id in s["files"] for s in vm["snapshots"].values())
            for vm in w.vms.values()
        )
        if not referenced and vol_id in w.volumes:
            self.remove_volume(w.volumes[vol_id])

    def pool_free(self, pool: str) -> int:
        """Bytes of ``pool`` no volume holds (its capacity less every volume's size)."""
        held = sum(int(v["capacity"]) for v in self.world.volumes.values() if v["pool"] == pool)
        return int(self.world.pools[pool]["capacity"]) - held

    def new_volume(
        self, pool: str, name: str, size: int, fmt: DiskFormat, backing: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        w = self.world
        if pool not in w.pools:
            raise NotFound(f"no storage pool {pool!r}")
        if fmt.value not in w.pools[pool]["formats"]:
            raise InvalidSpec(f"pool {pool!r} does not take {fmt.value} volumes")
        if size <= 0:
            raise InvalidSpec(f"a volume needs a size above 0 bytes, not {size}")
        vol_id = f"{pool}/{name}.{EXT.get(fmt.value, fmt.value)}"
        if vol_id in w.volumes:
            raise AlreadyExists(f"volume {vol_id!r} exists")
        free = self.pool_free(pool)
        if size > free:  # a sim pool is thick: every volume holds its whole size (as pools.list reports)
            raise InsufficientCapacity(f"pool {pool!r} has {free} bytes free; the volume needs {size}")
        path = w.pool_dir(pool) / vol_id.split("/", 1)[1]
        try:
            if backing is not None:
                qemuimg.create(path, fmt.value, size, backing=Path(backing["path"]), backing_fmt=backing["format"])
            else:
                qemuimg.create(path, fmt.value, size)
        except BaseException:
            path.unlink(missing_ok=True)  # a half-written image is nobody's
            raise
        vol = {
            "id": vol_id,
            "name": path.name,
            "pool": pool,
            "format": fmt.value,
            "capacity": size,
            "path": str(path),
            "backing": backing["id"] if backing else None,
        }
        w.volumes[vol_id] = vol
        w.save()
        return vol

    def copy_volume(self, src: dict[str, Any], pool: str, name: str, undo: Rollback) -> dict[str, Any]:
        """A full (flattened) copy of ``src`` in ``pool``; ``undo`` removes it if a later step fails."""
        fmt = DiskFormat(src["format"])
        if fmt.value not in self.world.pools[pool]["formats"]:
            fmt = DiskFormat.QCOW2 if "qcow2" in self.world.pools[pool]["formats"] else DiskFormat.RAW
        base = name.rsplit(".", 1)[0]
        vol = self.new_volume(pool, base, src["capacity"], fmt)
        undo.push(functools.partial(self.remove_volume, vol), f"delete {vol['id']}")
        qemuimg.convert(Path(src["path"]), src["format"], Path(vol["path"]), fmt.value)
        return vol

    def remove_volume(self, vol: dict[str, Any]) -> None:
        Path(vol["path"]).unlink(missing_ok=True)
        self.world.volumes.pop(vol["id"], None)
        self.world.save()
