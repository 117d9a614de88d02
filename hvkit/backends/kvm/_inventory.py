"""libvirt inventory: this daemon's host (and its peers'), storage pools and networks."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ...models import (
    DiskFormat,
    Host,
    Network,
    StoragePool,
)
from ._session import (
    FILE_POOLS,
    SHARED_POOLS,
    KvmSession,
)


def list_hosts(session: KvmSession) -> list[Host]:
    """This connection's host, then the hosts of the option ``peers`` (see ``_migrate``)."""
    return [_local_host(session), *session.peers.hosts(session._host_id)]


def _local_host(session: KvmSession) -> Host:
    info = session.conn.getInfo()  # model, MiB, cpus, MHz, nodes, sockets, cores, threads
    sockets = max(1, info[4] * info[5])
    free = session.conn.getFreeMemory() // (1024 * 1024) if session.driver != "test" else None
    return Host(
        id=session._host_id,
        name=session._host_name,
        cpu_sockets=sockets,
        cpu_cores=sockets * info[6],
        cpu_threads=info[2],
        memory_mib=info[1],
        hypervisor_kind=session.kind,
        hypervisor_version=session.version,
        cpu_model=info[0],
        cpu_mhz=info[3] or None,
        memory_used_mib=None if free is None else max(0, info[1] - free),
        extra={"uri": session._uri, "driver": session.driver, "virt_type": session._virt_type},
    )


def list_pools(session: KvmSession) -> list[StoragePool]:
    pools = []
    for pool in session.conn.listAllStoragePools(0):
        root = ET.fromstring(pool.XMLDesc(0))
        ptype = root.get("type", "")
        active = bool(pool.isActive())
        _, capacity, _, available = pool.info()
        formats = {DiskFormat.RAW, DiskFormat.QCOW2} if ptype in FILE_POOLS else {DiskFormat.RAW}
        pools.append(
            StoragePool(
                id=pool.UUIDString(),
                name=pool.name(),
                capacity_bytes=capacity,
                free_bytes=available,
                shared=ptype in SHARED_POOLS,
                formats=formats,
                type=ptype,
                host=None if ptype in SHARED_POOLS else session._host_id,
                active=active,
                extra={"path": root.findtext("target/path") or ""},
            )
        )
    return pools


def list_networks(session: KvmSession) -> list[Network]:
    nets = []
    for net in session.conn.listAllNetworks(0):
        root = ET.fromstring(net.XMLDesc(0))
        forward = root.find("forward")
        mode = forward.get("mode", "nat") if forward is not None else "isolated"
        bridge = root.find("bridge")
        nets.append(
            Network(
                id=net.UUIDString(),
                name=net.name(),
                type=mode,
                bridge=bridge.get("name") if bridge is not None else None,
                active=bool(net.isActive()),
                host=session._host_id,
            )
        )
    return nets
