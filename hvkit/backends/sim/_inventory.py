"""Sim inventory: hosts (with the load of their VMs), storage pools and networks."""

from __future__ import annotations

from ...models import (
    DiskFormat,
    Host,
    Network,
    StoragePool,
)
from ._session import SimSession


def list_hosts(session: SimSession) -> list[Host]:
    session.enter("list_hosts")
    with session.world.lock:
        usage = session.host_usage()
        return [
            Host(
                h["id"],
                h["name"],
                h["sockets"],
                h["cores"],
                h["threads"],
                h["memory_mib"],
                "sim",
                session.version,
                "sim-cpu",
                2400,
                usage[h["id"]][0],
                usage[h["id"]][1],
                h["maintenance"],
                not h.get("down", False),
            )
            for h in session.world.hosts.values()
        ]


def list_pools(session: SimSession) -> list[StoragePool]:
    session.enter("list_pools")
    with session.world.lock:
        used: dict[str, int] = {}
        for v in session.world.volumes.values():
            used[v["pool"]] = used.get(v["pool"], 0) + v["capacity"]
        return [
            StoragePool(
                p["id"],
                p["name"],
                p["capacity"],
                p["capacity"] - used.get(p["id"], 0),
                p["shared"],
                frozenset(DiskFormat(f) for f in p["formats"]),
                p["type"],
                None,
                True,
                extra={"path": str(session.world.pool_dir(p["id"]))},
            )
            for p in session.world.pools.values()
        ]


def list_networks(session: SimSession) -> list[Network]:
    session.enter("list_networks")
    with session.world.lock:
        return [
            Network(
                n["id"],
                n["name"],
                n["type"],
                n["bridge"],
                n.get("vlan"),
                True,
                None,
                extra={"subnet": n["subnet"] + ".0/24"},
            )
            for n in session.world.networks.values()
        ]
