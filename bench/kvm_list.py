"""Benchmark: list N inactive domains with state, CPUs and memory on qemu:///system.

Prints hvkit's ``hv.vms.list()`` time over the best hand-written libvirt-python call (one
``getAllDomainStats``), and the per-domain ``info()`` loop for reference. Goal: ratio <= 1.3.

    .venv/bin/python bench/kvm_list.py [N]
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable

import libvirt

import hvkit

PREFIX = f"hvbench-{uuid.uuid4().hex[:6]}-"


def _xml(name: str) -> str:
    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="KiB").text = "65536"
    ET.SubElement(dom, "vcpu").text = "1"
    ET.SubElement(ET.SubElement(dom, "os"), "type", arch="x86_64").text = "hvm"
    return ET.tostring(dom, encoding="unicode")


def _best(fn: Callable[[], object], rounds: int = 7) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) if rounds < 3 else statistics.median(sorted(times)[: rounds // 2 + 1])


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    conn = libvirt.open("qemu:///system")
    made = []
    try:
        t0 = time.perf_counter()
        for i in range(count):
            made.append(conn.defineXML(_xml(f"{PREFIX}{i:05d}")))
        print(f"defined {count} inactive domains in {time.perf_counter() - t0:.1f} s")
        flags = libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_BALLOON

        def hand_written() -> object:
            return [
                (d.name(), s["state.state"], s.get("vcpu.current"), s.get("balloon.maximum"))
                for d, s in conn.getAllDomainStats(flags, 0)
            ]

        def per_domain() -> object:
            return [(d.name(), d.info()) for d in conn.listAllDomains(0)]

        with hvkit.connect("kvm:///system", virt_type="qemu") as hv:
            listed = hv.vms.list()
            assert (
                sum(1 for vm in listed if vm.name.startswith(PREFIX) and vm.cpus == 1 and vm.memory_mib == 64) == count
            )
            t_hv = _best(hv.vms.list)
        t_bulk = _best(hand_written)
        t_each = _best(per_domain, 3)
        total = len(conn.listAllDomains(0))
        print(
            f"{total} domains: per-domain info() {t_each * 1000:.1f} ms, one getAllDomainStats {t_bulk * 1000:.1f} ms, "
            f"hvkit vms.list() {t_hv * 1000:.1f} ms"
        )
        print(f"ratio hvkit / getAllDomainStats = {t_hv / t_bulk:.2f} (goal <= 1.3)")
    finally:
        for dom in made:
            try:
                dom.undefine()
            except libvirt.libvirtError:
                pass
        conn.close()


if __name__ == "__main__":
    main()
