"""ToyBackend: the Backend contract served from an in-memory world (hvkit.driver, models, errors, capabilities only)."""

from __future__ import annotations

import functools
import itertools
import uuid
from typing import Any

from hvkit.capabilities import Capability
from hvkit.driver import Backend, ConnectOptions, Limits, Rollback, Traits
from hvkit.errors import InvalidSpec, NotFound
from hvkit.models import VM, Disk, DiskFormat, Host, Network, Nic, PowerState, StoragePool, VMSpec, Volume

from ._world import GiB, World, world

__all__ = ["ToyBackend"]

_macs = itertools.count(1)


class ToyBackend(Backend):
    """``toy://NAME``: one host, one pool and one network named ``default``; VMs live in memory."""

    kind = "toy"
    capabilities = frozenset({Capability.VM_CREATE, Capability.VM_DELETE, Capability.VM_POWER})
    traits = Traits(disk_formats=(DiskFormat.RAW,), limits=Limits(max_cpus=16, max_name_length=40))

    def __init__(self, options: ConnectOptions) -> None:
        super().__init__(options)
        if not options.url.host:
            raise InvalidSpec("a toy URL names its world: toy://NAME")
        self.world: World = world(options.url.host)

    @property
    def version(self) -> str:
        return "0.1"

    # -- inventory -------------------------------------------------------------------------------
    def list_hosts(self) -> list[Host]:
        return [Host("toy-host", "toy-host", 1, 4, 8, 16384, self.kind, self.version)]

    def list_pools(self) -> list[StoragePool]:
        with self.world.lock:
            used = sum(v["size"] for v in self.world.volumes.values())
        total = self.world.pool_bytes
        return [StoragePool("default", "default", total, total - used, formats=frozenset({DiskFormat.RAW}))]

    def list_networks(self) -> list[Network]:
        return [Network("default", "default", "bridge")]

    def list_vms(self, detail: bool = False) -> list[VM]:
        with self.world.lock:
            return [self._vm(rec) for rec in self.world.vms.values()]

    def list_volumes(self, pool: StoragePool) -> list[Volume]:
        with self.world.lock:
            return [_volume(v) for v in self.world.volumes.values() if v["pool"] == pool.name]

    def _vm(self, rec: dict[str, Any]) -> VM:
        disks = [
            Disk(f"disk{i}", self.world.volumes[vid]["size"], DiskFormat.RAW, pool="default", volume=vid)
            for i, vid in enumerate(rec["disks"])
        ]
        nics = [Nic(mac, network) for mac, network in rec["nics"]]
        return VM(rec["id"], rec["name"], rec["state"], rec["cpus"], rec["memory_mib"], disks=disks, nics=nics,
                  host="toy-host")  # fmt: skip

    def _rec(self, vm: VM) -> dict[str, Any]:
        rec = self.world.vms.get(vm.id)
        if rec is None:
            raise NotFound(f"no VM {vm.id!r} on toy://{self.world.name}")
        return rec

    # -- VMs -------------------------------------------------------------------------------------
    def create_vm(self, spec: VMSpec) -> VM:
        with self.world.lock, Rollback() as undo:  # a failure midway removes only what this call made
            disk_ids = []
            for disk in spec.disks:
                if disk.volume is not None:
                    disk_ids.append(disk.volume)
                    continue
                vid = f"default/{spec.name}-disk{len(disk_ids)}"
                self.world.volumes[vid] = {"id": vid, "pool": "default", "size": int((disk.size_gib or 0) * GiB)}
                undo.push(functools.partial(self.world.volumes.pop, vid, None), f"remove volume {vid}")
                disk_ids.append(vid)
            nics = [(n.mac or f"52:54:00:00:00:{next(_macs) % 256:02x}", n.network) for n in spec.nics]
            rec: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "name": spec.name,
                "state": PowerState.STOPPED,
                "cpus": spec.cpus,
                "memory_mib": spec.memory_mib,
                "disks": disk_ids,
                "nics": nics,
            }
            self.world.vms[rec["id"]] = rec
            return self._vm(rec)

    def delete_vm(self, vm: VM, keep_disks: bool) -> None:
        with self.world.lock:
            rec = self.world.vms.pop(self._rec(vm)["id"])
            if not keep_disks:
                for vid in rec["disks"]:
                    self.world.volumes.pop(vid, None)

    def _set_state(self, vm: VM, state: PowerState) -> VM:
        with self.world.lock:
            rec = self._rec(vm)
            rec["state"] = state
            return self._vm(rec)

    def start_vm(self, vm: VM) -> VM:
        return self._set_state(vm, PowerState.RUNNING)

    def stop_vm(self, vm: VM, force: bool, timeout: float) -> VM:
        return self._set_state(vm, PowerState.STOPPED)  # the toy guest always answers a shutdown request

    def reboot_vm(self, vm: VM, force: bool) -> VM:
        return self._set_state(vm, PowerState.RUNNING)


def _volume(rec: dict[str, Any]) -> Volume:
    return Volume(rec["id"], rec["id"].split("/", 1)[1], rec["pool"], rec["size"], rec["size"], DiskFormat.RAW)
