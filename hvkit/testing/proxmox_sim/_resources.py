"""The simulated cluster's ``/cluster/resources`` listing (nodes, VMs, storages), as PVE builds it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ._values import drive_memory, size_of

if TYPE_CHECKING:
    from .state import Cluster

__all__ = ["cluster_resources"]

GiB = 1024**3


def cluster_resources(cluster: Cluster, rtype: str | None) -> list[dict[str, Any]]:
    """``GET /cluster/resources`` of ``cluster``: nodes, VMs (bare, with status unknown, for an offline node whose
    figures expired) and storages, with the fields PVE lists."""
    out: list[dict[str, Any]] = []
    now = time.time()
    if rtype in (None, "node"):
        with cluster.mu:
            counts = {
                n: sum(1 for v in cluster.vms.values() if v.node == n and v.status == "running") for n in cluster.nodes
            }
        for i, node in enumerate(cluster.nodes):
            online = node not in cluster.node_offline
            out.append(
                {
                    "id": f"node/{node}",
                    "type": "node",
                    "node": node,
                    "status": "online" if online else "offline",
                    "maxcpu": 16,
                    "cpu": round(0.02 + 0.01 * counts[node], 4) if online else 0,
                    "maxmem": 64 * GiB,
                    "mem": (2 + counts[node]) * GiB,
                    "maxdisk": 100 * GiB,
                    "disk": 10 * GiB,
                    "uptime": 86400 + i,
                    "level": "",
                    "cgroup-mode": 2,
                }
            )
    if rtype in (None, "vm"):
        expired = cluster.expired_nodes()
        with cluster.mu:
            vms = sorted(cluster.vms.values(), key=lambda v: v.vmid)
            for vm in vms:
                cfg = vm.config
                if vm.node in expired:  # no figures left: what pmxcfs has of the config (lock, tags)
                    bare: dict[str, Any] = {"id": f"qemu/{vm.vmid}", "type": "qemu", "vmid": vm.vmid}
                    bare.update(node=vm.node, status="unknown")
                    bare.update({k: cfg[k] for k in ("tags", "lock") if cfg.get(k)})
                    out.append(bare)
                    continue
                running = vm.status == "running"
                entry: dict[str, Any] = {
                    "id": f"qemu/{vm.vmid}",
                    "type": "qemu",
                    "vmid": vm.vmid,
                    "node": vm.node,
                    "name": cfg.get("name", f"VM {vm.vmid}"),
                    "status": vm.status,
                    "template": 1 if cfg.get("template") == "1" else 0,
                    "maxcpu": int(cfg.get("cores", "1")) * int(cfg.get("sockets", "1")),
                    "maxmem": int(drive_memory(cfg.get("memory", "512"))) * 1024 * 1024,
                    "maxdisk": sum(
                        size_of(d.get("size", "0"))
                        for k, d in cluster.vm_disks(vm).items()
                        if not k.startswith("unused")
                    ),
                    "cpu": 0.05 if running else 0,
                    "mem": (256 * 1024 * 1024) if running else 0,
                    "disk": 0,
                    "uptime": int(now - vm.started) if running else 0,
                    "netin": vm.netin,
                    "netout": vm.netout,
                    "diskread": vm.diskread,
                    "diskwrite": vm.diskwrite,
                }
                if cfg.get("tags"):
                    entry["tags"] = cfg["tags"]
                if cfg.get("lock"):
                    entry["lock"] = cfg["lock"]
                out.append(entry)
    if rtype in (None, "storage"):
        for node in cluster.nodes:
            for st in cluster.storages.values():
                if not st.on(node):
                    continue
                used = cluster.used_bytes(node, st)
                out.append(
                    {
                        "id": f"storage/{node}/{st.id}",
                        "type": "storage",
                        "node": node,
                        "storage": st.id,
                        "status": "available",
                        "plugintype": st.type,
                        "shared": 1 if st.shared else 0,
                        "content": ",".join(sorted(st.content)),
                        "maxdisk": st.capacity,
                        "disk": used,
                    }
                )
    return out
