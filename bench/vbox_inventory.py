"""Benchmark the VirtualBox backend's inventory against the stand-in VBoxManage.

Inventory of 200 VMs (and of 20, to show the count does not grow): the number of VBoxManage processes
``hv.vms.list()`` starts (goal: a constant -- one ``list -l vms`` and one ``list hdds``), and its time
against a hand-written loop (``list vms``, then ``showvminfo --machinereadable`` per VM, as most
VirtualBox scripts do). Each VBoxManage run is a process start, so the process count is the cost.

Run: ``python bench/vbox_inventory.py``
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import hvkit
from hvkit.testing.vbox_sim import VBoxSim

COUNTS = (20, 200)


def populate(sim: VBoxSim, total: int) -> None:
    """``total`` stopped VMs, each with a real 16 MiB VDI on SATA and a NAT NIC (written into the state)."""
    folder = sim.root / "VirtualBox VMs"
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / "base.vdi"
    if not base.exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "vdi", str(base), "16M"], check=True)
    with sim.edit() as state:
        for i in range(len(state["vms"]), total):
            name = f"bench-{i:04d}"
            disk = folder / name / f"{name}-disk1.vdi"
            disk.parent.mkdir(exist_ok=True)
            subprocess.run(["cp", "--sparse=always", str(base), str(disk)], check=True)
            medium = {"uuid": str(uuid.uuid4()), "location": str(disk), "format": "VDI", "capacity": 16 << 20}
            state["media"].append(medium)
            state["vms"].append(
                {
                    "name": name,
                    "uuid": str(uuid.uuid4()),
                    "ostype": "Linux26_64",
                    "cfgfile": f"{disk.parent}/{name}.vbox",
                    "memory": 512,
                    "cpus": 1 + i % 4,
                    "firmware": "BIOS",
                    "description": "",
                    "state": "poweroff",
                    "state_time": "2026-01-01T00:00:00.000000000",
                    "attachments": [{"ctl": "SATA", "port": 0, "device": 0, "type": "hdd", "medium": medium["uuid"]}],
                    "controllers": [
                        {"name": "SATA", "bus": "sata", "type": "IntelAhci", "maxports": 30, "portcount": 1}
                    ],
                    "nics": [{"index": 1, "attach": "nat", "type": "82540EM", "mac": f"080027{i:06X}"}],
                    "snapshots": [],
                    "current_snapshot": None,
                    "guestprops": {},
                    "vrde": False,
                }
            )


def hand_loop(exe: str) -> tuple[int, int]:
    """What a script does by hand: list vms, then showvminfo per VM. Returns (VMs read, processes started)."""
    env = {**os.environ, "LANG": "C", "LC_ALL": "C"}
    out = subprocess.run([exe, "list", "vms"], capture_output=True, text=True, check=True, env=env).stdout
    ids = [line.rsplit("{", 1)[1].rstrip("}") for line in out.splitlines() if line.endswith("}")]
    for vm_id in ids:
        subprocess.run([exe, "showvminfo", vm_id, "--machinereadable"], capture_output=True, check=True, env=env)
    return len(ids), 1 + len(ids)


def timed(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hvkit-vbox-bench-") as tmp:
        sim = VBoxSim(Path(tmp) / "vbox", version="7.0")
        os.environ["PATH"] = f"{sim.bin_dir}{os.pathsep}{os.environ['PATH']}"
        with hvkit.connect("vbox:///") as hv:
            session = hv.backend.session  # type: ignore[attr-defined]
            for total in COUNTS:
                populate(sim, total)
                before = session.calls
                vms = hv.vms.list()
                used = session.calls - before
                assert len(vms) == total and all(len(v.disks) == 1 and v.disks[0].size_bytes == 16 << 20 for v in vms)
                print(f"inventory of {total:>4} VMs: {used} VBoxManage process(es) (list -l vms, list hdds)")
            ours = timed(hv.vms.list, 3)
            _, loop_processes = hand_loop(str(sim.vboxmanage))
            loop = timed(lambda: hand_loop(str(sim.vboxmanage)), 1)
        print(f"hand-written loop (list vms + showvminfo per VM): {loop_processes} VBoxManage processes")
        print(f"200 VMs: hv.vms.list() {ours:.2f} s, hand-written loop {loop:.2f} s: {loop / ours:.1f}x faster")


if __name__ == "__main__":
    main()
