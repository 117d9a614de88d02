"""Benchmark the Xen backend's inventory against the XAPI simulator.

XML-RPC calls for ``hv.vms.list()`` (and the detailed listing with disks and NICs) at 100 and at 1,000 VMs
(goal: equal), and hvkit's time over one hand-written ``VM.get_all_records`` call through the bare XenAPI
client on the same simulator (goal: <= 1.3x).

Run: ``python bench/xen_inventory.py``
"""

from __future__ import annotations

import ssl
import statistics
import time
import xmlrpc.client
from collections.abc import Callable
from typing import Any

import XenAPI

import hvkit
from hvkit.testing.xapi_sim import XapiSimulator


def _best_times(fns: dict[str, Callable[[], Any]], runs: int) -> dict[str, float]:
    """Best time of each function over ``runs`` rounds taken in turns (other load on the machine only adds
    time, so the best run is the function's own cost; the median is printed beside it)."""
    for fn in fns.values():
        fn()  # warm up (TLS session, caches)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    for name, values in samples.items():
        print(f"  {name}: best {min(values) * 1000:.0f} ms, median {statistics.median(values) * 1000:.0f} ms")
    return {name: min(values) for name, values in samples.items()}


def main() -> None:
    with XapiSimulator(hosts=4) as sim:
        hv = hvkit.connect(sim.url, password=sim.password, ca_file=sim.ca_file, timeout=60)
        ctx = ssl.create_default_context(cafile=sim.ca_file)
        bare = XenAPI.Session(sim.https, transport=xmlrpc.client.SafeTransport(context=ctx))
        bare.login_with_password(sim.username, sim.password, "2.21", "bench")
        counts: dict[int, tuple[int, int]] = {}
        for total in (100, 1000):
            sim.populate(total - len(hv.vms.list()))
            sim.reset_counts()
            vms = hv.vms.list()
            plain = len(sim.calls)
            plain_calls = sorted(set(sim.calls))
            sim.reset_counts()
            detailed = hv.backend.list_vms(detail=True)
            counts[total] = (plain, len(sim.calls))
            assert len(vms) == len(detailed) == total
            assert all(v.disks and v.nics for v in detailed)
            print(
                f"inventory of {total:>5} VMs: hv.vms.list() {plain} XML-RPC call(s) {plain_calls}; "
                f"with disks and NICs {len(sim.calls)} call(s) {sorted(set(sim.calls))}"
            )
        print(f"calls equal at 100 and 1,000 VMs: {counts[100] == counts[1000]}")
        times = _best_times(
            {
                "bare": lambda: bare.xenapi.VM.get_all_records(),
                "ours": hv.vms.list,
                "detail": lambda: hv.backend.list_vms(detail=True),
            },
            9,
        )
        raw, ours, detail = times["bare"], times["ours"], times["detail"]
        print(
            f"1,000 VMs: bare VM.get_all_records {raw * 1000:.1f} ms, hv.vms.list() {ours * 1000:.1f} ms, "
            f"with disks and NICs {detail * 1000:.1f} ms"
        )
        print(f"hvkit / bare call: {ours / raw:.2f}x (goal <= 1.3x); with disks and NICs {detail / raw:.2f}x")
        bare.xenapi.session.logout()
        hv.close()


if __name__ == "__main__":
    main()
