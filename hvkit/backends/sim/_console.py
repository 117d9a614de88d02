"""Sim console and guest IPs."""

from __future__ import annotations

from ...models import (
    VM,
    Console,
)
from ._session import SimSession


def console(session: SimSession, vm: VM) -> Console:
    session.enter("console")
    path = session.world.root / "console" / f"{vm.id}.log"
    return Console("log", None, None, url=path.as_uri())


def guest_ips(session: SimSession, vm: VM) -> list[str]:
    session.enter("guest_ips")
    with session.world.lock:
        return list(session.vm(vm.id)["ips"])
