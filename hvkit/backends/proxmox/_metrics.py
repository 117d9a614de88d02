"""Proxmox metrics from RRD data and the cluster resources."""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests  # noqa: F401 - imported before proxmoxer, whose https module calls sys.exit without it

from ...models import (
    VM,
    Host,
    HostMetrics,
    VMMetrics,
)
from ._errors import translate
from ._session import (
    MiB,
    ProxmoxSession,
)


def vm_metrics(session: ProxmoxSession, vms: list[VM]) -> list[VMMetrics]:
    """Counters of every asked VM from one ``/cluster/resources`` call."""
    now = dt.datetime.now(dt.UTC)
    wanted = {vm.id for vm in vms}
    out = []
    for e in session.resources("vm"):
        if str(e.get("vmid")) not in wanted:
            continue
        out.append(
            VMMetrics(
                vm=str(e["vmid"]),
                timestamp=now,
                cpu_usage=float(e.get("cpu", 0)),
                memory_used_mib=int(e.get("mem", 0)) // MiB,
                disk_read_bytes=int(e.get("diskread", 0)),
                disk_write_bytes=int(e.get("diskwrite", 0)),
                net_rx_bytes=int(e.get("netin", 0)),
                net_tx_bytes=int(e.get("netout", 0)),
            )
        )
    return out


def host_metrics(session: ProxmoxSession, hosts: list[Host]) -> list[HostMetrics]:
    now = dt.datetime.now(dt.UTC)
    wanted = {h.id for h in hosts}
    return [
        HostMetrics(
            host=e["node"],
            timestamp=now,
            cpu_usage=float(e.get("cpu", 0)),
            memory_used_mib=int(e.get("mem", 0)) // MiB,
        )
        for e in session.resources("node")
        if e["node"] in wanted
    ]


def rrddata(session: ProxmoxSession, vm: VM, timeframe: str = "hour") -> list[dict[str, Any]]:
    """Proxmox-only: the VM's RRD series (cpu, mem, netin/out and disk rates per interval)."""
    with translate():
        return list(session.qemu(vm).rrddata.get(timeframe=timeframe))
