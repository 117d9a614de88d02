"""List VMs on vcsim: hvkit's hv.vms.list() against a hand-written RetrievePropertiesEx.

Run: .venv/bin/python bench/vmware_list.py [--vms 100 1000] [--rounds 5]

For each VM count it prints the SOAP requests a listing costs and hvkit's time over the
hand-written call's (best of ``rounds``), twice:

* brief: ``hvkit.connect(..., vm_list="brief")`` against a hand-written read of name, power state,
  CPUs, memory, host and IPs (hvkit adds the template flag);
* full: hvkit's default listing (disks, NICs, firmware, tools ... as its VM model carries) against a
  hand-written read of the very same properties.

The hand-written side is plain pyvmomi, the way a careful user writes it: one ContainerView over VMs
and hosts, one RetrievePropertiesEx (continued while the server pages), then DestroyView.
"""

from __future__ import annotations

import argparse
import functools
import ssl
import time
from collections.abc import Callable
from typing import Any

import hvkit
from hvkit.backends.vmware.backend import VM_PROPS
from hvkit.testing.vcsim import Vcsim, VcsimConfig

BRIEF = [
    "name",
    "runtime.powerState",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "runtime.host",
    "guest.net",
]


class HandWritten:
    def __init__(self, sim: Vcsim) -> None:
        from pyVim.connect import SmartConnect

        ctx = ssl.create_default_context(cafile=sim.cert_file)
        self.si = SmartConnect(host=sim.host, port=sim.port, user=sim.username, pwd=sim.password, sslContext=ctx)
        self.calls = 0
        stub = self.si._stub
        invoke = stub.InvokeMethod

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return invoke(*args, **kwargs)

        stub.InvokeMethod = counted
        self.content = self.si.RetrieveContent()

    def list(self, fields: list[str]) -> list[dict[str, Any]]:
        from pyVmomi import vim, vmodl

        pc = vmodl.query.PropertyCollector
        content = self.content
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine, vim.HostSystem], True)
        traverse = pc.TraversalSpec(name="v", path="view", skip=False, type=vim.view.ContainerView)
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[traverse])],
            propSet=[
                pc.PropertySpec(type=vim.VirtualMachine, pathSet=fields),
                pc.PropertySpec(type=vim.HostSystem, pathSet=["name"]),
            ],
        )
        objects: list[Any] = []  # pyVmomi's ObjectContent
        result = content.propertyCollector.RetrievePropertiesEx([spec], pc.RetrieveOptions())
        while result is not None:
            objects.extend(result.objects or [])
            result = content.propertyCollector.ContinueRetrievePropertiesEx(result.token) if result.token else None
        view.DestroyView()
        hosts = {o.obj._moId: o.propSet[0].val for o in objects if isinstance(o.obj, vim.HostSystem)}
        rows = []
        for o in objects:
            if isinstance(o.obj, vim.VirtualMachine):
                p = {x.name: x.val for x in o.propSet}
                host = p.get("runtime.host")
                p["host"] = hosts.get(host._moId) if host is not None else None
                p["ips"] = [ip for nic in p.get("guest.net") or [] for ip in nic.ipAddress or []]
                rows.append(p)
        return rows

    def close(self) -> None:
        from pyVim.connect import Disconnect

        Disconnect(self.si)


def best(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def soap_requests(backend: Any) -> int:
    """The SOAP requests hvkit's vmware backend has sent so far."""
    return int(backend.soap_requests)


def requests_of(counter: Callable[[], int], fn: Callable[[], object]) -> int:
    before = counter()
    fn()
    return counter() - before


def measure(total_vms: int, rounds: int) -> list[tuple[str, int, int, int, float, float]]:
    per_pool = max(1, total_vms // 2)  # VMs go to the cluster's resource pool and to the standalone host
    rows = []
    with Vcsim(VcsimConfig(vms=per_pool, autostart=False)) as sim:
        hand = HandWritten(sim)
        try:
            for mode, fields in (("brief", BRIEF), ("full", VM_PROPS)):
                with hvkit.connect(sim.url, password=sim.password, ca_file=sim.cert_file, vm_list=mode) as hv:
                    backend: Any = hv.backend
                    vms = hv.vms.list()  # the session's ContainerView is made on first use
                    assert len(vms) == len(hand.list(fields))
                    hv_calls = requests_of(functools.partial(soap_requests, backend), hv.vms.list)
                    hand_calls = requests_of(lambda: hand.calls, functools.partial(hand.list, fields))
                    t_hand = best(functools.partial(hand.list, fields), rounds)
                    t_hv = best(hv.vms.list, rounds)
                    rows.append((mode, len(vms), hand_calls, hv_calls, t_hand, t_hv))
        finally:
            hand.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="hvkit VMware listing benchmark on vcsim")
    parser.add_argument("--vms", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{'mode':>6} {'VMs':>6} {'hand SOAP':>10} {'hvkit SOAP':>11} {'hand s':>8} {'hvkit s':>8} {'ratio':>6}")
    for count in args.vms:
        for mode, vms, hand_calls, hv_calls, t_hand, t_hv in measure(count, args.rounds):
            ratio = t_hv / t_hand
            print(f"{mode:>6} {vms:>6} {hand_calls:>10} {hv_calls:>11} {t_hand:>8.3f} {t_hv:>8.3f} {ratio:>6.2f}x")


if __name__ == "__main__":
    main()
