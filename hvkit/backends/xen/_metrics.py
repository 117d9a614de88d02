"""Hosts and metrics: one bulk read per class (host, VM, VM_metrics), one ``/rrd_updates`` per host for the
counters, guest IPs from guest metrics."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from xml.etree import ElementTree

import attrs

from ...errors import ConnectionError
from ...models import VM, Host, HostMetrics, VMMetrics
from . import _convert as cv
from ._convert import Records
from ._session import NULL, XapiSession
from ._vms import ref_of

__all__ = ["Xport", "guest_ips", "host_metrics", "list_hosts", "parse_xport", "rrd_updates", "vm_metrics"]

log = logging.getLogger("hvkit.xen")
MiB = 1024 * 1024
_RRD_SPAN = 366 * 86400  # the longest archive XAPI keeps (daily rows for a year)


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


@attrs.frozen
class Xport:
    """An ``/rrd_updates`` answer: ``series[(kind, uuid, name)]`` holds (time, value) rows, newest first."""

    step: int
    end: int
    series: dict[tuple[str, str, str], list[tuple[int, float]]]

    def latest(self, kind: str, uuid: str, name: str) -> float | None:
        return next((v for _, v in self.series.get((kind, uuid, name), []) if not math.isnan(v)), None)

    def total(self, kind: str, uuid: str, suffix: str, prefix: str) -> int | None:
        """Bytes behind DERIVE sources ``<prefix>*<suffix>``: the sum of rate x step over the rows."""
        found = [rows for (k, u, n), rows in self.series.items() if k == kind and u == uuid and
                 n.startswith(prefix) and n.endswith(suffix)]  # fmt: skip
        if not found:
            return None
        return int(sum(v * self.step for rows in found for _, v in rows if not math.isnan(v)))


def parse_xport(data: bytes) -> Xport:
    """XAPI's ``<xport>``: a legend of ``CF:kind:uuid:name`` entries, then rows of ``<t>`` and one ``<v>`` each."""
    try:
        root = ElementTree.fromstring(data)
        meta = root.find("meta")
        if root.tag != "xport" or meta is None:
            raise ValueError("no <xport><meta>")
        step = int(meta.findtext("step") or 0)
        end = int(meta.findtext("end") or 0)
        keys = []
        for entry in meta.iterfind("legend/entry"):
            _cf, kind, uuid, name = (entry.text or "").split(":", 3)
            keys.append((kind, uuid, name))
        series: dict[tuple[str, str, str], list[tuple[int, float]]] = {key: [] for key in keys}
        for row in root.iterfind("data/row"):
            t = int(float(row.findtext("t") or 0))
            values = [float(v.text or "nan") for v in row.iterfind("v")]
            if len(values) != len(keys):
                raise ValueError(f"a row of {len(values)} values for {len(keys)} columns")
            for key, value in zip(keys, values, strict=True):
                series[key].append((t, value))
    except (ElementTree.ParseError, ValueError) as exc:
        raise ConnectionError(f"/rrd_updates answered something that is not an xport: {exc}") from exc
    for rows in series.values():
        rows.sort(reverse=True)
    return Xport(step=step, end=end, series=series)


def rrd_updates(s: XapiSession, address: str, start: float) -> Xport:
    """One host's data sources and those of every VM resident on it, from ``start`` (unix seconds) on."""
    params = {"start": str(int(start)), "cf": "AVERAGE", "interval": "5", "host": "true"}
    return parse_xport(s.get("/rrd_updates", params, host=address))


def _host_data(s: XapiSession, hosts: Records, starts: dict[str, float]) -> dict[str, Xport]:
    """Host ref -> its xport: one request per host that has something wanted (``starts``)."""
    out = {}
    for ref, start in starts.items():
        address = str(hosts.get(ref, {}).get("address") or "")
        if not address:
            continue
        try:
            out[ref] = rrd_updates(s, address, start)
        except ConnectionError as exc:  # a host down or unreachable: its counters stay unknown
            log.debug("no RRD data from host %s: %s", address, exc)
    return out


def vm_metrics(s: XapiSession, vms: list[VM]) -> list[VMMetrics]:
    """Counters of many VMs: the VM, VM_metrics and host records, then one ``/rrd_updates`` per host.

    Disk and network bytes are the RRD's mean rates times their step, summed since the VM started.
    """
    records = s.call("VM_metrics.get_all_records")
    vm_records = {rec["uuid"]: rec for rec in s.call("VM.get_all_records").values()}
    hosts = s.call("host.get_all_records")
    now = time.time()
    starts: dict[str, float] = {}
    for vm in vms:
        rec = vm_records.get(vm.id)
        if rec is None or rec.get("power_state") not in ("Running", "Paused") or rec.get("resident_on") == NULL:
            continue
        started = cv.xapi_time((records.get(rec["metrics"]) or {}).get("start_time"))
        since = started.timestamp() - 5 if started and started.year > 1970 else now - 600
        since = max(since, now - _RRD_SPAN)
        starts[rec["resident_on"]] = min(starts.get(rec["resident_on"], now), since)
    data = _host_data(s, hosts, starts)
    stamp = dt.datetime.now(dt.UTC)
    out = []
    for vm in vms:
        rec = vm_records.get(vm.id) or {}
        metrics = records.get(rec.get("metrics") or NULL)
        if metrics is None:
            out.append(VMMetrics(vm=vm.id, timestamp=stamp))
            continue
        usage = [float(v) for v in (metrics.get("VCPUs_utilisation") or {}).values()]
        memory = int(metrics.get("memory_actual") or 0)
        result = VMMetrics(
            vm=vm.id,
            timestamp=cv.xapi_time(metrics.get("last_updated")) or stamp,
            cpu_usage=min(1.0, sum(usage) / len(usage)) if usage else None,
            memory_used_mib=memory // MiB if memory else None,
        )
        xport = data.get(rec.get("resident_on") or NULL)
        out.append(_from_rrd(result, xport) if xport is not None else result)
    return out


def _from_rrd(m: VMMetrics, x: Xport) -> VMMetrics:
    cpus = [v for (k, u, n), _ in x.series.items() if k == "vm" and u == m.vm and n[3:].isdigit() and n[:3] == "cpu"
            for v in [x.latest(k, u, n)] if v is not None]  # fmt: skip
    return attrs.evolve(
        m,
        timestamp=dt.datetime.fromtimestamp(x.end, dt.UTC) if x.end else m.timestamp,
        cpu_usage=min(1.0, sum(cpus) / len(cpus)) if cpus else m.cpu_usage,
        disk_read_bytes=x.total("vm", m.vm, "_read", "vbd_"),
        disk_write_bytes=x.total("vm", m.vm, "_write", "vbd_"),
        net_rx_bytes=x.total("vm", m.vm, "_rx", "vif_"),
        net_tx_bytes=x.total("vm", m.vm, "_tx", "vif_"),
    )


def host_metrics(s: XapiSession, hosts: list[Host]) -> list[HostMetrics]:
    """CPU (``cpu_avg``) and memory (``memory_total_kib``, ``memory_free_kib``) from one ``/rrd_updates`` per
    host; ``host_metrics`` and ``host_cpu`` records where a host does not answer."""
    records = s.call("host.get_all_records")
    by_uuid = {rec["uuid"]: ref for ref, rec in records.items()}
    now = time.time()
    data = _host_data(s, records, {by_uuid[h.id]: now - 60 for h in hosts if h.id in by_uuid})
    fallback: tuple[Records, dict[str, float]] | None = None
    stamp = dt.datetime.now(dt.UTC)
    out = []
    for h in hosts:
        ref = by_uuid.get(h.id, NULL)
        x = data.get(ref)
        total, free = (x.latest("host", h.id, "memory_total_kib"), x.latest("host", h.id, "memory_free_kib")) if x \
            else (None, None)  # fmt: skip
        cpu = x.latest("host", h.id, "cpu_avg") if x else None
        if x is not None and total is not None and free is not None and cpu is not None:
            used = int(total - free) // 1024
            when = dt.datetime.fromtimestamp(x.end, dt.UTC) if x.end else stamp
            out.append(HostMetrics(host=h.id, timestamp=when, cpu_usage=min(1.0, cpu), memory_used_mib=used))
            continue
        if fallback is None:
            fallback = s.call("host_metrics.get_all_records"), _cpu_usage(s)
        metrics, usage = fallback
        rec = metrics.get(records.get(ref, {}).get("metrics", NULL))
        used_mib = (int(rec["memory_total"]) - int(rec["memory_free"])) // MiB if rec else None
        out.append(HostMetrics(host=h.id, timestamp=stamp, cpu_usage=usage.get(ref), memory_used_mib=used_mib))
    return out


def guest_ips(s: XapiSession, vm: VM) -> list[str]:
    """Addresses the guest agent reports (``VM_guest_metrics.networks``: ``0/ip``, ``0/ipv4/0``, ``0/ipv6/0``)."""
    guest = s.call("VM.get_guest_metrics", ref_of(s, vm))
    if guest == NULL:
        return []
    return cv.ip_addresses({"networks": s.call("VM_guest_metrics.get_networks", guest)})
