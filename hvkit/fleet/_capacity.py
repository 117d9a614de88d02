"""Capacity and health, as data: per host, per pool, and findings. Pure functions of an inventory."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ..models import VM, Host, HostMetrics, Network, PowerState, Snapshot, StoragePool
from ._build import CONSUMING, by_ref

__all__ = ["CapacityReport", "Finding", "HostCapacity", "PoolCapacity", "capacity", "health"]

_OFF = {PowerState.STOPPED, PowerState.SUSPENDED, PowerState.CRASHED}


@attrs.frozen
class HostCapacity:
    """One host: what is allocated against what it has, and what is measured where the backend can."""

    hypervisor: str
    host: str  # id
    name: str
    kind: str
    maintenance: bool
    cpus: int  # logical CPUs (threads)
    vcpus_allocated: int  # vCPUs of VMs holding the host's resources (running, paused ...)
    cpu_overcommit: float  # vcpus_allocated / cpus
    memory_mib: int
    memory_allocated_mib: int
    memory_overcommit: float  # memory_allocated_mib / memory_mib
    cpu_usage: float | None  # measured 0..1, None where unknown
    memory_used_mib: int | None  # measured, None where unknown
    vms_running: int
    vms_total: int

    @property
    def memory_usage(self) -> float | None:
        if self.memory_used_mib is None or self.memory_mib <= 0:
            return None
        return self.memory_used_mib / self.memory_mib

    def to_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "memory_usage": self.memory_usage}


@attrs.frozen
class PoolCapacity:
    hypervisor: str
    pool: str  # id
    name: str
    shared: bool
    capacity_bytes: int
    used_bytes: int
    free_bytes: int
    used_ratio: float
    provisioned_bytes: int  # full size of the VM disks in the pool
    growth_headroom_bytes: int  # capacity - max(used, provisioned); < 0: thin disks cannot all grow

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class CapacityReport:
    hosts: tuple[HostCapacity, ...]
    pools: tuple[PoolCapacity, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"hosts": [h.to_dict() for h in self.hosts], "pools": [p.to_dict() for p in self.pools]}


@attrs.frozen
class Finding:
    """One health finding. ``check`` names the rule; ``value``/``threshold`` where it is a measure."""

    check: str
    severity: str  # critical | warning | info
    hypervisor: str | None
    subject: str
    message: str
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


def capacity(
    hosts: Iterable[Host],
    vms: Iterable[VM],
    pools: Iterable[StoragePool],
    kinds: Mapping[str, str],
    host_metrics: Mapping[tuple[str, str], HostMetrics] | None = None,
) -> CapacityReport:
    """Allocation and measured usage per host; used, free, provisioned and headroom per pool."""
    vm_list = list(vms)
    host_list = list(hosts)
    resolve = {ref: h.id for ref, h in by_ref(host_list).items()}
    alloc: dict[tuple[str | None, str], list[int]] = {}
    for vm in vm_list:
        hid = resolve.get((vm.hypervisor, vm.host or ""))
        if hid is None or vm.template:
            continue
        row = alloc.setdefault((vm.hypervisor, hid), [0, 0, 0, 0])
        row[3] += 1
        if vm.power_state in CONSUMING:
            row[0] += vm.cpus
            row[1] += vm.memory_mib
            row[2] += 1
    out_hosts = []
    for h in host_list:
        cpus, mem, running, total = alloc.get((h.hypervisor, h.id), [0, 0, 0, 0])
        measured = (host_metrics or {}).get((str(h.hypervisor), h.id))
        cpu_usage = measured.cpu_usage if measured is not None and measured.cpu_usage is not None else h.cpu_usage
        mem_used = (
            measured.memory_used_mib
            if measured is not None and measured.memory_used_mib is not None
            else h.memory_used_mib
        )
        out_hosts.append(
            HostCapacity(
                str(h.hypervisor),
                h.id,
                h.name,
                kinds.get(str(h.hypervisor), h.hypervisor_kind),
                h.maintenance,
                h.cpu_threads,
                cpus,
                _ratio(cpus, h.cpu_threads),
                h.memory_mib,
                mem,
                _ratio(mem, h.memory_mib),
                cpu_usage,
                mem_used,
                running,
                total,
            )
        )
    prov: dict[tuple[str | None, str], int] = {}
    pool_list = list(pools)
    pool_ref = {ref: p.id for ref, p in by_ref(pool_list).items()}
    for vm in vm_list:
        for d in vm.disks:
            pid = pool_ref.get((vm.hypervisor, d.pool or ""))
            if pid is not None:
                prov[(vm.hypervisor, pid)] = prov.get((vm.hypervisor, pid), 0) + d.size_bytes
    out_pools = []
    for p in pool_list:
        provisioned = prov.get((p.hypervisor, p.id), 0)
        out_pools.append(
            PoolCapacity(
                str(p.hypervisor),
                p.id,
                p.name,
                p.shared,
                p.capacity_bytes,
                p.used_bytes,
                p.free_bytes,
                _ratio(p.used_bytes, p.capacity_bytes),
                provisioned,
                p.capacity_bytes - max(p.used_bytes, provisioned),
            )
        )
    return CapacityReport(tuple(out_hosts), tuple(out_pools))


def health(
    report: CapacityReport,
    vms: Iterable[VM],
    networks: Iterable[Network],
    pools: Iterable[StoragePool],
    kinds: Mapping[str, str],
    *,
    snapshots: Mapping[tuple[str, str], list[Snapshot]] | None = None,
    failures: Iterable[tuple[str, str]] = (),
    host_threshold: float = 0.85,
    pool_threshold: float = 0.9,
    snapshot_days: float = 7.0,
    stopped_days: float = 30.0,
    now: dt.datetime | None = None,
) -> list[Finding]:
    """Findings: unreachable hypervisors, hosts over ``host_threshold``, pools over ``pool_threshold``,
    snapshots older than ``snapshot_days``, VMs stopped longer than ``stopped_days`` (or "unknown"
    where the backend does not say since when), and single points of failure."""
    now = now or dt.datetime.now(dt.UTC)
    out: list[Finding] = []
    for label, error in failures:
        out.append(Finding("hypervisor-unreachable", "critical", label, label, f"could not read {label}: {error}"))
    for h in report.hosts:
        measures = [("CPU usage", h.cpu_usage), ("memory usage", h.memory_usage)]
        if h.memory_usage is None:
            measures.append(("memory allocated", h.memory_overcommit))
        for what, value in measures:
            if value is not None and value > host_threshold:
                out.append(
                    Finding(
                        "host-overloaded",
                        "warning",
                        h.hypervisor,
                        h.name,
                        f"host {h.name}: {what} {value:.0%} is over {host_threshold:.0%}",
                        value,
                        host_threshold,
                    )
                )
    for p in report.pools:
        if p.used_ratio > pool_threshold:
            out.append(
                Finding(
                    "pool-nearly-full",
                    "critical" if p.used_ratio >= 0.98 else "warning",
                    p.hypervisor,
                    p.name,
                    f"pool {p.name}: {p.used_ratio:.0%} used, over {pool_threshold:.0%}",
                    p.used_ratio,
                    pool_threshold,
                )
            )
        if p.growth_headroom_bytes < 0:
            out.append(
                Finding(
                    "pool-overprovisioned",
                    "warning",
                    p.hypervisor,
                    p.name,
                    f"pool {p.name}: its disks can grow {-p.growth_headroom_bytes / 1024**3:.1f} GiB past its capacity",
                    float(p.growth_headroom_bytes),
                    0.0,
                )
            )
    vm_list = list(vms)
    by_id = {(str(v.hypervisor), v.id): v for v in vm_list}
    # snapshots
    if snapshots is not None:
        unknown_age: dict[str, int] = {}
        for (label, vm_id), snaps in snapshots.items():
            vm = by_id.get((label, vm_id))
            name = vm.name if vm else vm_id
            for s in snaps:
                if s.created is None:
                    unknown_age[label] = unknown_age.get(label, 0) + 1
                    continue
                created = s.created if s.created.tzinfo else s.created.replace(tzinfo=dt.UTC)
                days = (now - created).total_seconds() / 86400
                if days > snapshot_days:
                    out.append(
                        Finding(
                            "old-snapshot",
                            "warning",
                            label,
                            f"{name}/{s.name}",
                            f"VM {name}: snapshot {s.name!r} is {days:.0f} days old (> {snapshot_days:g})",
                            days,
                            snapshot_days,
                        )
                    )
        for label, n in sorted(unknown_age.items()):
            out.append(
                Finding(
                    "snapshot-age-unknown", "info", label, label, f"{n} snapshot(s) on {label} have no creation time"
                )
            )
    # stopped for long
    unknown: dict[str, int] = {}
    for vm in vm_list:
        if vm.template or vm.power_state not in _OFF:
            continue
        label = str(vm.hypervisor)
        since = vm.state_since
        if since is None:
            unknown[label] = unknown.get(label, 0) + 1
            continue
        days = (now - since).total_seconds() / 86400
        if days > stopped_days:
            out.append(
                Finding(
                    "stopped-long",
                    "info",
                    label,
                    vm.name,
                    f"VM {vm.name} has been {vm.power_state.value} for {days:.0f} days (> {stopped_days:g})",
                    days,
                    stopped_days,
                )
            )
    for label, n in sorted(unknown.items()):
        out.append(
            Finding(
                "stopped-since-unknown",
                "info",
                label,
                label,
                f"{n} stopped VM(s) on {label}: the {kinds.get(label, '?')} backend does not report since when",
            )
        )
    out += _single_points(report, vm_list, list(networks), list(pools))
    return out


def _single_points(
    report: CapacityReport, vms: list[VM], networks: list[Network], pools: list[StoragePool]
) -> list[Finding]:
    out: list[Finding] = []
    by_hv: dict[str, list[HostCapacity]] = {}
    for h in report.hosts:
        by_hv.setdefault(h.hypervisor, []).append(h)
    host_name = {(h.hypervisor, r): h.name for h in report.hosts for r in (h.host, h.name)}
    running = [v for v in vms if v.power_state in CONSUMING]
    for label, hosts in sorted(by_hv.items()):
        usable = [h for h in hosts if not h.maintenance]
        users = sum(h.vms_running for h in hosts)
        if len(usable) == 1 and users:
            out.append(
                Finding(
                    "single-point-of-failure",
                    "warning",
                    label,
                    usable[0].name,
                    f"{label} has one usable host ({usable[0].name}) running {users} VM(s): no failover",
                )
            )
    # networks present on one host only, used by VMs
    for label in sorted(by_hv):
        if len(by_hv[label]) < 2:
            continue
        net_hosts: dict[str, set[str]] = {}
        for n in networks:
            if str(n.hypervisor) == label:
                net_hosts.setdefault(n.name, set()).add(n.host or "*")
        for name, where in sorted(net_hosts.items()):
            if "*" in where or len(where) != 1:
                continue
            host = next(iter(where))
            using = [
                v.name for v in running if str(v.hypervisor) == label and any(nic.network in (name,) for nic in v.nics)
            ]
            if using:
                hn = host_name.get((label, host), host)
                out.append(
                    Finding(
                        "single-point-of-failure",
                        "warning",
                        label,
                        hn,
                        f"network {name!r} exists only on host {hn}; {len(using)} VM(s) use it and cannot fail over",
                    )
                )
        for p in pools:
            if str(p.hypervisor) != label or p.shared or p.host is None:
                continue
            using = [
                v.name for v in running if str(v.hypervisor) == label and any(d.pool in (p.id, p.name) for d in v.disks)
            ]
            if using:
                hn = host_name.get((label, p.host), p.host)
                out.append(
                    Finding(
                        "single-point-of-failure",
                        "warning",
                        label,
                        hn,
                        f"pool {p.name!r} is local to host {hn}; {len(using)} VM(s) keep disks there: no failover",
                    )
                )
    return out
