"""List 10,000 VMs on the sim backend.

Figures: hvkit's ``hv.vms.list()`` against the driver's own ``list_vms()`` (the core's overhead) and
against a bare read of the simulator's table (the cost of building full VM values).
"""

from __future__ import annotations

import statistics
import time

import hvkit
from hvkit import NicSpec, VMSpec

COUNT = 10_000


def timed(fn: object, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    with hvkit.connect("sim://bench-list", hosts=20, host_memory_mib=10**7) as hv:
        backend = hv.backend
        world = backend.world  # type: ignore[attr-defined]
        first = hv.vms.create(VMSpec(name="vm-00000", memory_mib=512, nics=[NicSpec("default")]))
        template = world.vms[first.id]
        hosts = list(world.hosts)
        for i in range(1, COUNT):  # set-up only: copies of the first VM's record, spread over the hosts
            vm_id = f"vm-copy-{i}"
            nics = [{**template["nics"][0], "mac": f"52:54:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"}]
            world.vms[vm_id] = {
                **template,
                "id": vm_id,
                "name": f"vm-{i:05d}",
                "cpus": 1 + i % 4,
                "host": hosts[i % len(hosts)],
                "nics": nics,
            }

        def raw() -> list[tuple[str, str, int, int]]:
            with world.lock:
                return [(v["name"], v["state"], v["cpus"], v["memory_mib"]) for v in world.vms.values()]

        def api() -> list[hvkit.VM]:
            return hv.vms.list()

        assert len(api()) == COUNT == len(raw())
        t_raw, t_api, t_driver = timed(raw), timed(api), timed(backend.list_vms)
        print(f"list {COUNT} VMs: hvkit {t_api * 1000:.0f} ms ({t_api / COUNT * 1e6:.1f} us per VM)")
        print(f"  over the driver's list_vms(): {t_api / t_driver:.2f}x (the core's overhead)")
        print(f"  over a bare table read of 4 fields: {t_api / t_raw:.0f}x ({t_raw * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
