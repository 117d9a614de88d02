"""The simulator's ``/rrd_updates`` handler: one host's round-robin databases as XAPI exports them.

XAPI (xcp-rrdd) answers ``GET /rrd_updates?session_id=..&start=<unix s>&cf=AVERAGE&interval=5&host=true``
with an ``<xport>`` document (Xmlm's XML declaration, then no whitespace; values as ``%0.5g``): a
``<meta>`` (start, step, end, rows, columns and a legend of
``AVERAGE:vm:<uuid>:<name>`` / ``AVERAGE:host:<uuid>:<name>``) and ``<data>`` rows, newest first, each
``<t>`` then one ``<v>`` per legend entry. Byte sources (``vbd_xvda_read``, ``vif_0_rx``, ``pif_eth0_tx``)
are DERIVE sources: a row holds the mean rate in bytes per second over its step, ``NaN`` where nothing
was recorded (a VM that was not running then). Each host answers for itself and the VMs resident on it.
"""

from __future__ import annotations

import calendar
import hashlib
import math
import threading
import time
from typing import Any

from .api import API
from .model import Failure

__all__ = ["RRAS", "Rrd", "RrdError"]

KiB = 1024
# (seconds per row, rows kept): XAPI's AVERAGE archives
RRAS = ((5, 120), (60, 120), (3600, 168), (86400, 366))


class RrdError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _seed(uuid: str) -> int:
    return int.from_bytes(hashlib.sha256(uuid.encode()).digest()[:4], "big")


def _unix(value: Any) -> float | None:
    text = str(getattr(value, "value", value) or "")
    try:
        return float(calendar.timegm(time.strptime(text, "%Y%m%dT%H:%M:%SZ")))
    except ValueError:
        return None


def _fmt(value: float) -> str:
    """As xcp-rrdd's ``f_to_s``: ``%0.5g``, ``0.0`` for zero, ``NaN``, ``Infinity``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return "0.0" if value == 0 else f"{value:.5g}"


class Rrd:
    """Data sources of the simulated pool, derived from its state; ``advance`` moves the RRD clock on."""

    def __init__(self, api: API) -> None:
        self.api = api
        self.created = time.time()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for the RRDs (running VMs accumulate that much more I/O)."""
        with self._lock:
            self._offset += seconds

    # -- the handler -----------------------------------------------------------------------------------
    def updates(self, host: str, query: dict[str, str]) -> bytes:
        try:
            self.api.check_session(query.get("session_id", ""))
        except Failure:
            raise RrdError(401, "Unauthorised") from None
        try:
            start = int(float(query.get("start", "0")))
            interval = int(query.get("interval", "5") or 5)
        except ValueError:
            raise RrdError(400, "start and interval are whole seconds") from None
        if query.get("cf", "AVERAGE") != "AVERAGE":
            raise RrdError(400, "only the AVERAGE consolidation is kept")
        now = int(self.now())
        if start < 0:  # relative to the last update, as XAPI takes it
            start += now
        step, rows = next(
            ((st, n) for st, n in RRAS if st >= interval and now - start <= st * n), (RRAS[-1][0], RRAS[-1][1])
        )
        end = now // step * step
        times = [t for t in range(end, end - step * rows, -step) if t >= start]
        with self.api.store.lock:
            sources = self._sources(host, query.get("host", "false") == "true", query.get("vm_uuid", ""))
        legend = "".join(f"<entry>AVERAGE:{name}</entry>" for name, _ in sources)
        data = "".join(
            "<row><t>" + str(t) + "</t>" + "".join(f"<v>{_fmt(value(t, step))}</v>" for _, value in sources) + "</row>"
            for t in times
        )
        first = start // step * step + step  # XAPI's first_cdp_time
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<xport><meta><start>{first}</start>'
            f"<step>{step}</step><end>{end}</end><rows>{len(times)}</rows>"
            f"<columns>{len(sources)}</columns><legend>{legend}</legend></meta><data>{data}</data></xport>"
        ).encode()

    # -- data sources ----------------------------------------------------------------------------------
    def _sources(self, host: str, with_host: bool, vm_uuid: str) -> list[tuple[str, Any]]:
        s = self.api.store
        out: list[tuple[str, Any]] = []
        if with_host:
            out += self._host_sources(host)
        for ref, rec in s.objects["VM"].items():
            if rec["is_a_template"] or rec["is_a_snapshot"] or rec["is_control_domain"]:
                continue
            if rec["resident_on"] != host or rec["power_state"] not in ("Running", "Paused"):
                continue
            if vm_uuid and rec["uuid"] != vm_uuid:
                continue
            out += self._vm_sources(ref, rec)
        return out

    def _host_sources(self, host: str) -> list[tuple[str, Any]]:
        s = self.api.store
        rec = s.get("host", host)
        metrics = s.get("host_metrics", rec["metrics"]) if s.exists("host_metrics", rec["metrics"]) else {}
        total = int(metrics.get("memory_total") or 0) // KiB
        free = int(metrics.get("memory_free") or 0) // KiB
        cpus = sorted((c for c in s.objects["host_cpu"].values() if c["host"] == host), key=lambda c: int(c["number"]))
        usage = [float(c["utilisation"]) for c in cpus]
        prefix = f"host:{rec['uuid']}:"
        seed = _seed(rec["uuid"])
        out: list[tuple[str, Any]] = [
            (f"{prefix}cpu{i}", lambda t, st, u=u: u + (t // st % 7) / 1000) for i, u in enumerate(usage)
        ]
        out += [
            (prefix + "cpu_avg", lambda t, st: sum(usage) / len(usage) if usage else math.nan),
            (prefix + "memory_total_kib", lambda t, st: float(total)),
            (prefix + "memory_free_kib", lambda t, st: float(free)),
            (prefix + "loadavg", lambda t, st: 0.1 + (t // st % 5) / 100),
            (prefix + "pif_eth0_rx", lambda t, st: float(200_000 + seed % 50_000)),
            (prefix + "pif_eth0_tx", lambda t, st: float(100_000 + seed % 30_000)),
        ]
        return out

    def _vm_sources(self, vm: str, rec: dict[str, Any]) -> list[tuple[str, Any]]:
        s = self.api.store
        metrics = s.get("VM_metrics", rec["metrics"]) if s.exists("VM_metrics", rec["metrics"]) else {}
        started = _unix(metrics.get("start_time")) or self.created
        seed = _seed(rec["uuid"])
        running = rec["power_state"] == "Running"
        prefix = f"vm:{rec['uuid']}:"

        def rate(per_second: float) -> Any:
            # a row is the mean over (t - step, t]: the share of it the VM ran, NaN before it started
            def value(t: int, st: int) -> float:
                if t <= started:
                    return math.nan
                return per_second * min(1.0, (t - started) / st) if running else 0.0

            return value

        vcpus = int(metrics.get("VCPUs_number") or rec["VCPUs_at_startup"])
        util = metrics.get("VCPUs_utilisation") or {}
        memory = float(metrics.get("memory_actual") or rec["memory_dynamic_max"])
        out: list[tuple[str, Any]] = [
            (f"{prefix}cpu{i}", rate(float(util.get(str(i), 0.02)) + (seed >> i) % 10 / 100)) for i in range(vcpus)
        ]
        out += [
            (prefix + "memory", lambda t, st: memory if t > started else math.nan),
            (prefix + "memory_target", lambda t, st: memory if t > started else math.nan),
            (prefix + "memory_internal_free", lambda t, st: memory / KiB * 0.4 if t > started else math.nan),
        ]
        for n, vbd in enumerate(sorted(rec["VBDs"], key=lambda b: s.get("VBD", b)["userdevice"])):
            brec = s.get("VBD", vbd)
            if brec["type"] == "CD" and brec["empty"]:
                continue
            device = brec["device"] or "xvd" + chr(ord("a") + int(brec["userdevice"] or n))
            out += [
                (f"{prefix}vbd_{device}_read", rate(float(64 * KiB * (1 + seed % 7)))),
                (f"{prefix}vbd_{device}_write", rate(float(16 * KiB * (1 + seed % 5)))),
            ]
        for vif in sorted(rec["VIFs"], key=lambda v: s.get("VIF", v)["device"]):
            device = s.get("VIF", vif)["device"]
            out += [
                (f"{prefix}vif_{device}_rx", rate(float(8 * KiB * (1 + seed % 3)))),
                (f"{prefix}vif_{device}_tx", rate(float(4 * KiB * (1 + seed % 4)))),
            ]
        return out
