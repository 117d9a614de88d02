"""Metrics: ``metrics setup`` once per connection, then one ``metrics query`` for every VM and the host."""

from __future__ import annotations

import datetime as dt
import re

from hvkit.models import VM, Host, HostMetrics, VMMetrics

from . import _parse
from ._session import Session

__all__ = ["host_metrics", "vm_metrics"]

METRICS = "CPU/Load/User,CPU/Load/Kernel,RAM/Usage/Used"


def _query(session: Session, objects: str) -> dict[str, dict[str, str]]:
    if not session.metrics_ready:
        session.run(["metrics", "setup", "--period", "1", "--samples", "1", "*", METRICS])
        session.metrics_ready = True
    rows = _parse.metrics_rows(session.run(["metrics", "query", objects, METRICS]))
    out: dict[str, dict[str, str]] = {}
    for obj, metric, value in rows:
        out.setdefault(obj, {})[metric] = value
    return out


def _percent(value: str | None) -> float | None:
    match = re.match(r"([\d.]+)%", value or "")
    return float(match.group(1)) / 100 if match else None


def _mib(value: str | None) -> int | None:
    match = re.match(r"(\d+) kB", value or "")
    return int(match.group(1)) // 1024 if match else None


def vm_metrics(session: Session, vms: list[VM]) -> list[VMMetrics]:
    rows = _query(session, "*") if vms else {}
    now = dt.datetime.now(dt.UTC)
    out = []
    for vm in vms:
        row = rows.get(vm.name, {})
        user, kernel = _percent(row.get("CPU/Load/User")), _percent(row.get("CPU/Load/Kernel"))
        usage = None if user is None else user + (kernel or 0.0)
        out.append(VMMetrics(vm=vm.id, timestamp=now, cpu_usage=usage, memory_used_mib=_mib(row.get("RAM/Usage/Used"))))
    return out


def host_metrics(session: Session, hosts: list[Host]) -> list[HostMetrics]:
    row = _query(session, "host").get("host", {})
    user, kernel = _percent(row.get("CPU/Load/User")), _percent(row.get("CPU/Load/Kernel"))
    now = dt.datetime.now(dt.UTC)
    usage = None if user is None else user + (kernel or 0.0)
    return [
        HostMetrics(host=h.id, timestamp=now, cpu_usage=usage, memory_used_mib=_mib(row.get("RAM/Usage/Used")))
        for h in hosts
    ]
