"""VM counters: Measure-VM (resource metering, enabled on first use) and Get-VM's CPU and memory."""

from __future__ import annotations

import datetime as dt

from ...models import VM, HostMetrics, VMMetrics
from ._session import Session

__all__ = ["host_metrics", "vm_metrics"]

MiB = 1024 * 1024


def vm_metrics(s: Session, vms: list[VM]) -> list[VMMetrics]:
    """Counters for every VM in one round trip (Measure-VM reports disk and network totals in MB)."""
    doc = s.run("vm.metrics", {"Ids": [vm.id for vm in vms]})
    now = dt.datetime.now(dt.UTC)
    out = []
    for rec in doc.get("VMs") or []:
        out.append(
            VMMetrics(
                vm=rec["Id"],
                timestamp=now,
                cpu_usage=float(rec.get("CPUUsage") or 0) / 100.0,
                memory_used_mib=int(rec.get("MemoryAssigned") or 0) // MiB,
                disk_read_bytes=int(rec.get("DiskRead") or 0) * MiB,
                disk_write_bytes=int(rec.get("DiskWritten") or 0) * MiB,
                net_rx_bytes=int(rec.get("NetIn") or 0) * MiB,
                net_tx_bytes=int(rec.get("NetOut") or 0) * MiB,
            )
        )
    return out


def host_metrics(s: Session) -> HostMetrics:
    """The host's processor time (one 1 s sample) and memory in use: one round trip."""
    rec = s.run("host.metrics", {})
    total, free = int(rec.get("TotalKB") or 0), int(rec.get("FreeKB") or 0)
    return HostMetrics(
        host=rec["ComputerName"],
        timestamp=dt.datetime.now(dt.UTC),
        cpu_usage=float(rec.get("CpuPercent") or 0) / 100.0,
        memory_used_mib=(total - free) // 1024,
    )
