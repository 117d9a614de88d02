"""vSphere performance counters for VMs and hosts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ...models import (
    VM,
    Host,
    HostMetrics,
    PowerState,
    VMMetrics,
)
from ._session import (
    VmwareSession,
    usage,
    vim,
)


def _counter_ids(session: VmwareSession) -> dict[str, int]:
    if session.counters is None:
        perf = session.content.perfManager
        counters = session.pc.read(perf, ["perfCounter"]).get("perfCounter") or []
        session.counters = {f"{c.groupInfo.key}.{c.nameInfo.key}.{c.rollupType}": c.key for c in counters}
    return session.counters


def _query_perf(session: VmwareSession, entities: list[Any], names: list[str]) -> dict[str, dict[str, float]]:
    ids = _counter_ids(session)
    metric_ids = [vim.PerformanceManager.MetricId(counterId=ids[n], instance="") for n in names if n in ids]
    if not metric_ids or not entities:
        return {}
    by_id = {v: k for k, v in ids.items()}
    specs = [
        vim.PerformanceManager.QuerySpec(entity=e, metricId=metric_ids, intervalId=20, maxSample=1) for e in entities
    ]
    out: dict[str, dict[str, float]] = {}
    for result in session.content.perfManager.QueryPerf(querySpec=specs) or []:
        values: dict[str, float] = {}
        for series in getattr(result, "value", None) or []:
            samples = list(series.value or [])
            if samples and samples[-1] >= 0:
                values[by_id.get(series.id.counterId, "?")] = float(samples[-1])
        out[result.entity._moId] = values
    return out


def vm_metrics(session: VmwareSession, vms: list[VM]) -> list[VMMetrics]:
    now = dt.datetime.now(dt.UTC)
    running = [session.ref(vim.VirtualMachine, v.id) for v in vms if v.power_state is PowerState.RUNNING]
    # net.* counters are rates (KBps), not the byte counts VMMetrics holds: not asked for
    data = _query_perf(session, running, ["cpu.usage.average", "mem.consumed.average"])
    out = []
    for vm in vms:
        cpu, mem = usage(data.get(vm.id, {}))
        out.append(VMMetrics(vm=vm.id, timestamp=now, cpu_usage=cpu, memory_used_mib=mem))
    return out


def host_metrics(session: VmwareSession, hosts: list[Host]) -> list[HostMetrics]:
    now = dt.datetime.now(dt.UTC)
    data = _query_perf(
        session, [session.ref(vim.HostSystem, h.id) for h in hosts], ["cpu.usage.average", "mem.consumed.average"]
    )
    out = []
    for host in hosts:
        cpu, mem = usage(data.get(host.id, {}))
        cpu = host.cpu_usage if cpu is None else cpu
        mem = host.memory_used_mib if mem is None else mem
        out.append(HostMetrics(host=host.id, timestamp=now, cpu_usage=cpu, memory_used_mib=mem))
    return out
