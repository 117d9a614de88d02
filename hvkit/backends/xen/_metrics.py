"""Hosts and metrics: one bulk read per class (host, host_metrics, VM_metrics), guest IPs from guest metrics."""

from __future__ import annotations

import datetime as dt

import attrs

from ...models import VM, Host, HostMetrics, VMMetrics
from . import _convert as cv
from ._session import NULL, XapiSession
from ._vms import ref_of

__all__ = ["guest_ips", "host_metrics", "list_hosts", "vm_metrics"]

MiB = 1024 * 1024


def _cpu_usage(s: XapiSession) -> dict[str, float]:
    """Host ref -> mean utilisation of its physical CPUs (``host_cpu``, one call for the pool)."""
    per_host: dict[str, list[float]] = {}
    for rec in s.call("host_cpu.get_all_records").values():
        per_host.setdefault(rec["host"], []).append(float(rec["utilisation"]))
    return {host: min(1.0, sum(v) / len(v)) for host, v in per_host.items() if v}


def list_hosts(s: XapiSession) -> list[Host]:
    metrics = s.call("host_metrics.get_all_records")
    usage = _cpu_usage(s)
    return [
        attrs.evolve(cv.host(ref, rec, metrics.get(rec["metrics"])), cpu_usage=usage.get(ref))
        for ref, rec in s.call("host.get_all_records").items()
    ]


def vm_metrics(s: XapiSession, vms: list[VM]) -> list[VMMetrics]:
    """Counters of many VMs from one VM_metrics.get_all_records (plus the VM records when refs are unknown)."""
    records = s.call("VM_metrics.get_all_records")
    refs = {vm.id: vm.extra.get("metrics") for vm in vms}
    if any(not r for r in refs.values()):
        by_uuid = {rec["uuid"]: rec["metrics"] for rec in s.call("VM.get_all_records").values()}
        refs = {vm_id: r or by_uuid.get(vm_id) for vm_id, r in refs.items()}
    now = dt.datetime.now(dt.UTC)
    out = []
    for vm in vms:
        rec = records.get(refs.get(vm.id) or NULL)
        if rec is None:
            out.append(VMMetrics(vm=vm.id, timestamp=now))
            continue
        usage = [float(v) for v in (rec.get("VCPUs_utilisation") or {}).values()]
        memory = int(rec.get("memory_actual") or 0)
        out.append(
            VMMetrics(
                vm=vm.id,
                timestamp=cv.xapi_time(rec.get("last_updated")) or now,
                cpu_usage=min(1.0, sum(usage) / len(usage)) if usage else None,
                memory_used_mib=memory // MiB if memory else None,
            )
        )
    return out


def host_metrics(s: XapiSession, hosts: list[Host]) -> list[HostMetrics]:
    """Memory from ``host_metrics`` and CPU from ``host_cpu``: three calls for any number of hosts."""
    metrics = s.call("host_metrics.get_all_records")
    usage = _cpu_usage(s)
    refs = {rec["uuid"]: (ref, rec["metrics"]) for ref, rec in s.call("host.get_all_records").items()}
    now = dt.datetime.now(dt.UTC)
    out = []
    for h in hosts:
        ref, metrics_ref = refs.get(h.id, (NULL, NULL))
        rec = metrics.get(metrics_ref)
        used = (int(rec["memory_total"]) - int(rec["memory_free"])) // MiB if rec else None
        out.append(HostMetrics(host=h.id, timestamp=now, cpu_usage=usage.get(ref), memory_used_mib=used))
    return out


def guest_ips(s: XapiSession, vm: VM) -> list[str]:
    """Addresses the guest agent reports (``VM_guest_metrics.networks``: ``0/ip``, ``0/ipv4/0``, ``0/ipv6/0``)."""
    guest = s.call("VM.get_guest_metrics", ref_of(s, vm))
    if guest == NULL:
        return []
    return cv.ip_addresses({"networks": s.call("VM_guest_metrics.get_networks", guest)})
