"""The simulated PVE API: cluster resources, nodes, their networks and RRD data."""

from __future__ import annotations

import time
from typing import Any

from ._request import Request, route
from .state import PVEError


# -- cluster / nodes ---------------------------------------------------------------------------------
@route("/version", "GET")
def version(r: Request) -> Any:
    return {"version": "9.1.3", "release": "9.1", "repoid": "sim"}


@route("/cluster/resources", "GET")
def resources(r: Request) -> Any:
    rtype = r.p.get("type")
    if rtype == "sdn":
        return []
    return r.c.resources(rtype)


@route("/cluster/nextid", "GET")
def nextid(r: Request) -> Any:
    if "vmid" in r.p:
        vmid = int(r.p["vmid"])
        with r.c.mu:
            if vmid in r.c.vms:
                raise PVEError(400, "Parameter verification failed.", {"vmid": f"VM {vmid} already exists\n"})
        return str(vmid)
    return str(r.c.nextid())


@route("/nodes", "GET")
def nodes(r: Request) -> Any:
    return [{k: v for k, v in e.items() if k != "type"} for e in r.c.resources("node")]


@route("/nodes/{node}/status", "GET")
def node_status(r: Request) -> Any:
    r.c.check_node(r.node)
    entry = next(e for e in r.c.resources("node") if e["node"] == r.node)
    return {
        "cpu": entry["cpu"],
        "uptime": entry["uptime"],
        "pveversion": "pve-manager/9.1.3/sim",
        "kversion": "Linux 6.17.2-1-pve",
        "cpuinfo": {
            "cpus": 16,
            "cores": 8,
            "sockets": 1,
            "model": "Simulated CPU @ 3.00GHz",
            "mhz": "3000.000",
            "hvm": "1",
        },
        "memory": {"total": entry["maxmem"], "used": entry["mem"], "free": entry["maxmem"] - entry["mem"]},
        "rootfs": {"total": 100 * 1024**3, "used": 10 * 1024**3},
        "loadavg": ["0.10", "0.05", "0.01"],
    }


@route("/nodes/{node}/network", "GET")
def node_network(r: Request) -> Any:
    r.c.check_node(r.node)
    kind = r.p.get("type")
    if kind not in (None, "bridge", "any_bridge", "any_local_bridge"):
        return []
    return [
        {
            "iface": b,
            "type": "bridge",
            "active": 1,
            "autostart": 1,
            "bridge_ports": "eth0" if b == "vmbr0" else "",
            "families": ["inet"],
            "method": "manual",
        }
        for b in r.c.bridges
    ]


def _rrd(r: Request, cpu: float) -> list[dict[str, Any]]:
    now = int(time.time()) // 60 * 60
    return [
        {
            "time": now - 60 * i,
            "cpu": cpu,
            "maxcpu": 1,
            "mem": 256 * 1024**2,
            "maxmem": 1024**3,
            "netin": 100.0,
            "netout": 50.0,
            "diskread": 10.0,
            "diskwrite": 5.0,
        }
        for i in range(70, -1, -1)
    ]


@route("/nodes/{node}/rrddata", "GET")
def node_rrddata(r: Request) -> Any:
    r.c.check_node(r.node)
    return _rrd(r, 0.03)


@route("/nodes/{node}/qemu/{vmid}/rrddata", "GET")
def vm_rrddata(r: Request) -> Any:
    vm = r.vm()
    return _rrd(r, 0.05 if vm.status == "running" else 0.0)
