"""Moves: Move-VMStorage to another storage path, Move-VM to another host."""

from __future__ import annotations

from ...errors import InvalidSpec
from ...models import VM
from . import _convert
from ._session import Session

__all__ = ["migrate"]


def migrate(s: Session, vm: VM, host: str | None, pool: str | None) -> VM:
    if host is not None and vm.host is not None and host.lower() == vm.host.lower():
        raise InvalidSpec(f"VM {vm.name!r} already runs on {host}")
    params = {"Id": vm.id, "DestinationHost": host, "DestinationStoragePath": s.pool_dir(pool) if pool else None}
    rec = s.run("vm.migrate", params)
    if host is not None:
        return vm  # it lives on the other host now; read it there
    return _convert.vm(rec, s.pool_name)
