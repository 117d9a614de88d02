"""vSphere inventory: hosts, datastores and networks, each list one PropertyCollector round trip."""

from __future__ import annotations

from typing import Any

from ...models import (
    DiskFormat,
    Host,
    Network,
    StoragePool,
)
from ._property_collector import Props
from ._session import (
    DS_PROPS,
    HOST_PROPS,
    VmwareSession,
    vim,
)


def list_hosts(session: VmwareSession) -> list[Host]:
    return [_host(session, obj, props) for obj, props in session.pc.collect(session.dc, {vim.HostSystem: HOST_PROPS})]


def _host(session: VmwareSession, obj: Any, props: Props) -> Host:
    hw = props.get("summary.hardware")
    stats = props.get("summary.quickStats")
    product = props.get("summary.config.product")
    cores = int(getattr(hw, "numCpuCores", 0) or 0)
    mhz = int(getattr(hw, "cpuMhz", 0) or 0)
    used_mhz = getattr(stats, "overallCpuUsage", None)
    usage = None
    if used_mhz is not None and cores and mhz:
        usage = min(1.0, float(used_mhz) / (cores * mhz))
    used_mem = getattr(stats, "overallMemoryUsage", None)
    parent = props.get("parent")
    return Host(
        id=obj._moId,
        name=props.get("name", obj._moId),
        cpu_sockets=int(getattr(hw, "numCpuPkgs", 0) or 0),
        cpu_cores=cores,
        cpu_threads=int(getattr(hw, "numCpuThreads", 0) or 0),
        memory_mib=int(getattr(hw, "memorySize", 0) or 0) // (1024 * 1024),
        hypervisor_kind="esxi",
        hypervisor_version=str(getattr(product, "version", "") or ""),
        cpu_model=str(getattr(hw, "cpuModel", "") or ""),
        cpu_mhz=mhz or None,
        cpu_usage=usage,
        memory_used_mib=int(used_mem) if used_mem is not None else None,
        maintenance=bool(props.get("runtime.inMaintenanceMode", False)),
        connected=props.get("runtime.connectionState", "connected") == "connected",
        extra={
            "moref": obj._moId,
            "parent": parent._moId if parent is not None else None,
            "product": str(getattr(product, "fullName", "") or ""),
        },
    )


def list_pools(session: VmwareSession) -> list[StoragePool]:
    hosts, _, _, _ = session.names()
    out = []
    for obj, props in session.pc.collect(session.dc, {vim.Datastore: DS_PROPS}):
        summary = props.get("summary")
        mounts = props.get("host") or []
        shared = bool(getattr(summary, "multipleHostAccess", False)) or len(mounts) > 1
        mounted = frozenset(hosts[m.key._moId] for m in mounts if m.key is not None and m.key._moId in hosts)
        host = next(iter(mounted)) if len(mounts) == 1 and len(mounted) == 1 else None
        out.append(
            StoragePool(
                id=obj._moId,
                name=props.get("name", obj._moId),
                capacity_bytes=int(getattr(summary, "capacity", 0) or 0),
                free_bytes=int(getattr(summary, "freeSpace", 0) or 0),
                shared=shared,
                formats=frozenset({DiskFormat.VMDK}),  # type: ignore[arg-type]
                type=str(getattr(summary, "type", "") or ""),
                host=None if shared else host,
                active=bool(getattr(summary, "accessible", True)),
                hosts=mounted,
                extra={"moref": obj._moId, "url": str(getattr(summary, "url", "") or "")},
            )
        )
    return out


def list_networks(session: VmwareSession) -> list[Network]:
    found = session.pc.collect(
        session.dc,
        {
            vim.Network: ["name", "summary.accessible"],
            vim.dvs.DistributedVirtualPortgroup: [
                "name",
                "key",
                "config.defaultPortConfig",
                "config.distributedVirtualSwitch",
            ],
        },
    )
    out = []
    for obj, props in found:
        vlan = None
        if isinstance(obj, vim.dvs.DistributedVirtualPortgroup):
            kind = "dvportgroup"
            port = props.get("config.defaultPortConfig")
            vlan_spec = getattr(port, "vlan", None)
            vlan_id = getattr(vlan_spec, "vlanId", None)
            if isinstance(vlan_id, int) and vlan_id > 0:
                vlan = vlan_id
        elif isinstance(obj, vim.OpaqueNetwork):
            kind = "opaque"
        else:
            kind = "portgroup"
        switch = props.get("config.distributedVirtualSwitch")
        out.append(
            Network(
                id=obj._moId,
                name=props.get("name", obj._moId),
                type=kind,
                vlan=vlan,
                active=bool(props.get("summary.accessible", True)),
                extra={
                    "moref": obj._moId,
                    "key": props.get("key"),
                    "switch": switch._moId if switch is not None else None,
                },
            )
        )
    return out
