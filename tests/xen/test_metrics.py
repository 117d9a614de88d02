"""Metrics through ``/rrd_updates``: counters that grow, one request per host, XAPI's xport format."""

from __future__ import annotations

import math
import ssl
import urllib.error
import urllib.request

import pytest

from hvkit import errors
from hvkit.backends.xen._metrics import parse_xport
from hvkit.hypervisor import Hypervisor
from hvkit.models import DiskSpec, NicSpec, VMSpec
from hvkit.testing.xapi_sim import XapiSimulator

POOL = "NFS storage"
NET = "Pool-wide network associated with eth0"

# The shape xcp-rrdd writes for /rrd_updates (Rrd_updates.xml_of through Xmlm; values as %0.5g): compact,
# legend entries CF:kind:uuid:name, rows newest first, NaN where nothing was recorded.
XAPI_SAMPLE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<xport><meta><start>1213578000</start><step>3600</step><end>1213617600</end><rows>2</rows>"
    b"<columns>4</columns><legend><entry>AVERAGE:vm:ecd8d7a0-1be3-4d91-bd0e-4888c0e30ab3:cpu1</entry>"
    b"<entry>AVERAGE:vm:ecd8d7a0-1be3-4d91-bd0e-4888c0e30ab3:vbd_xvda_read</entry>"
    b"<entry>AVERAGE:host:dbd1ed05-64fd-4e89-9b9d-8d6b4e4aa1d6:cpu_avg</entry>"
    b"<entry>AVERAGE:host:dbd1ed05-64fd-4e89-9b9d-8d6b4e4aa1d6:memory_free_kib</entry></legend></meta>"
    b"<data><row><t>1213617600</t><v>0.0118</v><v>512</v><v>0.0208</v><v>1.5e+06</v></row>"
    b"<row><t>1213614000</t><v>0.0</v><v>NaN</v><v>0.0176</v><v>1.6e+06</v></row></data></xport>"
)


def _start(hv: Hypervisor, names: list[str], name: str) -> str:
    vm = hv.vms.create(VMSpec(name=name, memory_mib=128, disks=[DiskSpec(size_gib=0.01, pool=POOL)],
                              nics=[NicSpec(network=NET)]))  # fmt: skip
    names.append(vm.name)
    return str(hv.vms.start(vm).id)


def test_xapi_shaped_sample_parses() -> None:
    x = parse_xport(XAPI_SAMPLE)
    assert x.step == 3600 and x.end == 1213617600
    vm, host = "ecd8d7a0-1be3-4d91-bd0e-4888c0e30ab3", "dbd1ed05-64fd-4e89-9b9d-8d6b4e4aa1d6"
    assert x.latest("vm", vm, "cpu1") == pytest.approx(0.0118)
    assert x.latest("host", host, "memory_free_kib") == 1.5e6
    assert x.total("vm", vm, "_read", "vbd_") == 512 * 3600  # the NaN row adds nothing
    with pytest.raises(errors.ConnectionError):
        parse_xport(b"<html>not this</html>")


def test_simulator_answers_the_xport_shape(hv: Hypervisor, xapi: XapiSimulator, made: list[str]) -> None:
    vm = _start(hv, made, "rrd-shape")
    xapi.rrd.advance(30)
    session = hv.backend.session  # type: ignore[attr-defined]
    body = session.get("/rrd_updates", {"start": str(int(xapi.rrd.now()) - 60), "cf": "AVERAGE", "interval": "5",
                                        "host": "true"})  # fmt: skip
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<xport><meta><start>') and body.count(b"\n") == 1
    x = parse_xport(body)
    assert x.step == 5 and len(next(iter(x.series.values()))) in (12, 13)
    names = {name for kind, uuid, name in x.series if uuid == vm}
    assert {
        "cpu0",
        "memory",
        "memory_internal_free",
        "vbd_xvda_read",
        "vbd_xvda_write",
        "vif_0_rx",
        "vif_0_tx",
    } <= names
    hosts = {name for kind, _, name in x.series if kind == "host"}
    assert {"cpu_avg", "memory_total_kib", "memory_free_kib", "cpu0"} <= hosts
    assert not math.isnan(x.latest("vm", vm, "vbd_xvda_read") or math.nan)


def test_rrd_updates_needs_a_session(xapi: XapiSimulator) -> None:
    ctx = ssl.create_default_context(cafile=xapi.ca_file)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{xapi.https}/rrd_updates?session_id=OpaqueRef:nope&start=0", context=ctx, timeout=10)
    assert err.value.code == 401


def test_counters_grow_for_a_running_vm(hv: Hypervisor, xapi: XapiSimulator, made: list[str]) -> None:
    _start(hv, made, "rrd-grow")
    xapi.rrd.advance(20)
    [first] = hv.vms.metrics([made[0]])  # type: ignore[list-item]
    counters = (first.disk_read_bytes, first.disk_write_bytes, first.net_rx_bytes, first.net_tx_bytes)
    assert all(c is not None and c > 0 for c in counters)
    assert first.cpu_usage is not None and 0 < first.cpu_usage <= 1
    xapi.rrd.advance(60)
    [later] = hv.vms.metrics([made[0]])  # type: ignore[list-item]
    assert later.disk_read_bytes > first.disk_read_bytes  # type: ignore[operator]
    assert later.net_tx_bytes > first.net_tx_bytes  # type: ignore[operator]
    assert later.timestamp > first.timestamp


def test_one_request_per_host_whatever_the_vm_count(hv: Hypervisor, xapi: XapiSimulator, made: list[str]) -> None:
    session = hv.backend.session  # type: ignore[attr-defined]
    for i in range(2):
        _start(hv, made, f"rrd-count-{i}")
    hv.vms.migrate(made[1], host="xcp-ng-2")  # VMs on both hosts: the member answers for its own
    counts = []
    for n in (2, 5):
        while len(made) < n:
            _start(hv, made, f"rrd-count-{len(made)}")
        vms = [hv.vms.get(name) for name in made]
        hosts = {vm.host for vm in vms}
        xapi.reset_counts()
        before = session.http_requests
        metrics = hv.vms.metrics(vms)
        assert session.http_requests - before == len(hosts) == 2
        assert all(m.disk_read_bytes is not None for m in metrics)
        counts.append((session.http_requests - before, len(xapi.calls)))
    assert counts[0][1] == counts[1][1]  # the XML-RPC calls do not grow either
    assert max(c[0] for c in counts) <= 2  # two hosts in the pool


def test_host_metrics_from_rrd(hv: Hypervisor) -> None:
    session = hv.backend.session  # type: ignore[attr-defined]
    xapi_calls_before = session.http_requests
    metrics = hv.hosts.metrics()
    assert session.http_requests - xapi_calls_before == len(metrics) == 2
    assert all(m.cpu_usage and m.memory_used_mib for m in metrics)
    assert all(m.timestamp.second % 5 == 0 and m.timestamp.microsecond == 0 for m in metrics)  # a 5 s RRD row


def test_expired_session_is_renewed_for_rrd_updates(hv: Hypervisor, xapi: XapiSimulator, made: list[str]) -> None:
    session = hv.backend.session  # type: ignore[attr-defined]
    _start(hv, made, "rrd-expiry")
    xapi.rrd.advance(20)
    session.call("pool.get_all")
    xapi.expire_sessions()
    before = session.http_requests
    data = parse_xport(session.get("/rrd_updates", {"start": str(int(xapi.rrd.now()) - 30), "host": "true"}))
    assert session.http_requests - before == 2  # 401, a new login, then the answer
    assert any(kind == "vm" for kind, _, _ in data.series)
