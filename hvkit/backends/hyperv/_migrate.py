"""Moves: Move-VMStorage to another storage path, Move-VM to another host."""

from __future__ import annotations

import attrs

from ...errors import InvalidSpec, NotFound
from ...models import VM, Host
from . import _convert
from ._session import Session

__all__ = ["migrate", "peer_hosts"]


def peer_hosts(s: Session) -> list[Host]:
    """The hosts named by the ``migration_hosts`` option: where Move-VM may send this host's VMs.

    A connection reads one host, so a peer's processors and memory are not known here (zero, ``extra`` says so).
    """
    return [
        Host(
            id=name,
            name=name,
            cpu_sockets=0,
            cpu_cores=0,
            cpu_threads=0,
            memory_mib=0,
            hypervisor_kind="hyperv",
            extra={"migration_peer": True, "detail": "not read: connect to this host to read it"},
        )
        for name in s.migration_hosts
    ]


def migrate(s: Session, vm: VM, host: str | None, pool: str | None) -> VM:
    if host is not None:
        return _move_vm(s, vm, host, pool)
    params = {"Id": vm.id, "DestinationHost": None, "DestinationStoragePath": s.pool_dir(pool) if pool else None}
    return _convert.vm(s.run("vm.migrate", params), s.pool_name)


def _move_vm(s: Session, vm: VM, host: str, pool: str | None) -> VM:
    """Move-VM, live when the VM runs; its disks go along unless they all lie on SMB shares both hosts reach."""
    if vm.host is not None and host.lower() == vm.host.lower():
        raise InvalidSpec(f"VM {vm.name!r} already runs on {host}")
    name = next((n for n in s.migration_hosts if n.lower() == host.lower()), None)
    if name is None:
        raise NotFound(f"no Hyper-V host {host!r} to move to: name it in the URL option migration_hosts=")
    shared = bool(vm.disks) and all((d.path or "").startswith("\\\\") for d in vm.disks)
    storage = None if shared else s.pool_dir(pool or "default")
    rec = s.run("vm.migrate", {"Id": vm.id, "DestinationHost": name, "DestinationStoragePath": storage})
    disks = vm.disks
    if storage is not None:  # the same file names in the destination's folder
        disks = tuple(
            attrs.evolve(d, path=moved, volume=moved, pool=pool or "default")
            for d in vm.disks
            for moved in [f"{storage}\\{(d.path or '').rpartition(chr(92))[2]}" if d.path else None]
        )
    return attrs.evolve(
        vm,
        host=rec.get("ComputerName") or name,
        power_state=_convert.power_state(rec),
        disks=disks,
        extra={**vm.extra, "path": storage or vm.extra.get("path")},
    )
