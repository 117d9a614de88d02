"""libvirt metrics (bulk domain stats, host CPU and memory) and lifecycle events."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import libvirt

from ...driver import Event
from ...models import (
    VM,
    Host,
    HostMetrics,
    VMMetrics,
)
from ._session import (
    EVENTS,
    KvmSession,
    log,
    utc_now,
)


def vm_metrics(session: KvmSession, vms: list[VM]) -> list[VMMetrics]:
    wanted = {vm.id for vm in vms}
    stats = (
        libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
        | libvirt.VIR_DOMAIN_STATS_BALLOON
        | libvirt.VIR_DOMAIN_STATS_BLOCK
        | libvirt.VIR_DOMAIN_STATS_INTERFACE
    )
    now = utc_now()
    by_id: dict[str, VMMetrics] = {}
    for dom, st in session.conn.getAllDomainStats(stats, 0):
        uuid = dom.UUIDString()
        if uuid not in wanted:
            continue
        used = None
        if "balloon.rss" in st:
            used = int(st["balloon.rss"]) // 1024
        elif "balloon.current" in st and "balloon.unused" in st:
            used = (int(st["balloon.current"]) - int(st["balloon.unused"])) // 1024
        blocks = range(int(st.get("block.count", 0)))
        nets = range(int(st.get("net.count", 0)))
        by_id[uuid] = VMMetrics(
            vm=uuid,
            timestamp=now,
            cpu_time_ns=st.get("cpu.time"),
            memory_used_mib=used,
            disk_read_bytes=sum(int(st.get(f"block.{i}.rd.bytes", 0)) for i in blocks) if blocks else None,
            disk_write_bytes=sum(int(st.get(f"block.{i}.wr.bytes", 0)) for i in blocks) if blocks else None,
            net_rx_bytes=sum(int(st.get(f"net.{i}.rx.bytes", 0)) for i in nets) if nets else None,
            net_tx_bytes=sum(int(st.get(f"net.{i}.tx.bytes", 0)) for i in nets) if nets else None,
        )
    return [by_id.get(vm.id) or VMMetrics(vm=vm.id, timestamp=now) for vm in vms]


def host_metrics(session: KvmSession, hosts: list[Host]) -> list[HostMetrics]:
    def sample() -> tuple[float, int, int]:
        cpu = session.conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS, 0)
        total = sum(int(v) for k, v in cpu.items() if k in ("kernel", "user", "idle", "iowait"))
        return time.monotonic(), total, int(cpu.get("idle", 0)) + int(cpu.get("iowait", 0))

    first = session.cpu_sample
    if first is None or time.monotonic() - first[0] > 60:
        first = sample()
        time.sleep(0.2)
    second = sample()
    session.cpu_sample = second
    delta = second[1] - first[1]
    usage = None if delta <= 0 else max(0.0, min(1.0, 1 - (second[2] - first[2]) / delta))
    mem = session.conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
    used = (
        int(mem.get("total", 0)) - int(mem.get("free", 0)) - int(mem.get("buffers", 0)) - int(mem.get("cached", 0))
    ) // 1024
    now = utc_now()
    return [HostMetrics(host=h.id, timestamp=now, cpu_usage=usage, memory_used_mib=used) for h in hosts]


def subscribe(session: KvmSession, callback: Callable[[Event], None]) -> Callable[[], None]:
    names = {getattr(libvirt, k): v for k, v in EVENTS.items() if hasattr(libvirt, k)}

    def on_event(_conn: object, dom: libvirt.virDomain, event: int, detail: int, _opaque: object) -> None:
        kind = names.get(event, str(event))
        if event == libvirt.VIR_DOMAIN_EVENT_STOPPED and detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED:
            kind = "suspended"
        try:
            callback({"vm": dom.UUIDString(), "name": dom.name(), "event": kind, "detail": detail})
        except Exception:
            log.exception("event callback failed")

    cb_id = session.conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_event, None)
    session.subscriptions.add(cb_id)

    def stop() -> None:
        if cb_id in session.subscriptions:
            session.subscriptions.discard(cb_id)
            if session._conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    session._conn.domainEventDeregisterAny(cb_id)

    return stop
