"""Proxmox inventory: nodes, storages (with the nodes that have them) and networks."""

from __future__ import annotations

from typing import Any

import attrs
import requests  # noqa: F401 - imported before proxmoxer, whose https module calls sys.exit without it

from ...models import (
    DiskFormat,
    Host,
    Network,
    StoragePool,
)
from ._errors import translate
from ._session import (
    FILE_STORAGES,
    MiB,
    ProxmoxSession,
)


def list_hosts(session: ProxmoxSession) -> list[Host]:
    hosts = []
    for entry in session.resources("node"):
        node = entry["node"]
        online = entry.get("status") == "online"
        info: dict[str, Any] = {}
        if online:
            with translate():
                info = session.api.nodes(node).status.get()
        cpu = info.get("cpuinfo", {})
        hosts.append(
            Host(
                id=node,
                name=node,
                cpu_sockets=int(cpu.get("sockets", 1)),
                cpu_cores=int(cpu.get("cores", entry.get("maxcpu", 0))),
                cpu_threads=int(cpu.get("cpus", entry.get("maxcpu", 0))),
                memory_mib=int(entry.get("maxmem", 0)) // MiB,
                hypervisor_kind="proxmox",
                hypervisor_version=str(info.get("pveversion", session.version)),
                cpu_model=str(cpu.get("model", "")),
                cpu_mhz=int(float(cpu["mhz"])) if cpu.get("mhz") else None,
                cpu_usage=float(entry.get("cpu", 0)),
                memory_used_mib=int(entry.get("mem", 0)) // MiB,
                connected=online,
                extra={"level": entry.get("level", ""), "uptime": entry.get("uptime")},
            )
        )
    return hosts


def list_pools(session: ProxmoxSession) -> list[StoragePool]:
    pools: dict[str, StoragePool] = {}
    nodes: dict[str, set[str]] = {}  # a shared storage is listed once per node that has it
    for entry in session.resources("storage"):
        content = set(str(entry.get("content", "")).split(","))
        if "images" not in content:
            continue
        shared = bool(entry.get("shared"))
        sid = entry["storage"]
        pool_id = sid if shared else f"{entry['node']}/{sid}"
        nodes.setdefault(pool_id, set()).add(str(entry["node"]))
        if pool_id in pools:
            continue
        kind = str(entry.get("plugintype", ""))
        formats = {DiskFormat.QCOW2, DiskFormat.RAW, DiskFormat.VMDK} if kind in FILE_STORAGES else {DiskFormat.RAW}
        total = int(entry.get("maxdisk", 0))
        pools[pool_id] = StoragePool(
            id=pool_id,
            name=sid,
            capacity_bytes=total,
            free_bytes=max(0, total - int(entry.get("disk", 0))),
            shared=shared,
            formats=frozenset(formats),  # type: ignore[arg-type]  # attrs plugin vs. generic converter
            type=kind,
            host=None if shared else entry["node"],
            active=entry.get("status") == "available",
            extra={"content": sorted(c for c in content if c), "node": entry["node"]},
        )
    return [attrs.evolve(p, hosts=nodes[p.id]) if p.shared else p for p in pools.values()]


def list_networks(session: ProxmoxSession) -> list[Network]:
    nets = []
    for entry in session.resources("node"):
        if entry.get("status") != "online":
            continue
        node = entry["node"]
        with translate():
            ifaces = session.api.nodes(node).network.get(type="any_bridge")
        for iface in ifaces:
            name = iface["iface"]
            nets.append(
                Network(
                    id=f"{node}/{name}",
                    name=name,
                    type="bridge",
                    bridge=name,
                    active=bool(iface.get("active", 1)),
                    host=node,
                )
            )
    return nets
