"""``hvkit demo``: provision guests on the built-in simulated hypervisor and show the inventory."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from .._connect import connect
from ..backends.sim import forget
from ..models import DiskSpec, NicSpec, VMSpec
from ._common import default_sim_state, emit, run_task
from .vm import SNAP_COLUMNS, VM_COLUMNS

__all__ = ["register"]


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[common], help="provision a few guests on simulated hosts and show them")
    p.add_argument("--state-dir", default=None, help="where the demo hypervisor keeps its state")
    p.set_defaults(func=demo)


def _say(text: str) -> None:
    sys.stdout.write(f"\n== {text}\n")
    sys.stdout.flush()


def demo(args: argparse.Namespace) -> int:
    state = Path(args.state_dir or default_sim_state())
    shutil.rmtree(state / "demo", ignore_errors=True)  # every demo starts from a fresh hypervisor
    forget("demo")
    url = "sim://demo"
    with connect(url, state_dir=str(state), task_delay=0.15) as hv:
        _say(f"connected to {hv.url} ({hv.kind} {hv.version}), {len(hv.capabilities)} capabilities")
        emit(
            args,
            hv.hosts.list(),
            [("HOST", lambda h: h.name), ("CPUS", lambda h: h.cpu_threads), ("MEMORY_MIB", lambda h: h.memory_mib)],
        )
        guests = [("web-1", 2, 2048, 10), ("web-2", 2, 2048, 10), ("db-1", 4, 8192, 40)]
        _say("provisioning guests (real qcow2 images, made with qemu-img)")
        for name, cpus, memory, disk in guests:
            spec = VMSpec(
                name=name,
                cpus=cpus,
                memory_mib=memory,
                disks=[DiskSpec(size_gib=disk, pool="default")],
                nics=[NicSpec(network="default")],
                tags=frozenset({"demo"}),
            )
            vm = run_task(hv.vms.create(spec, wait=False), f"create {name}")
            vm = run_task(hv.vms.start(vm, wait=False), f"start {name}")
            sys.stdout.write(f"  {vm.name:6} {vm.power_state.value} on {vm.host}, ip {', '.join(vm.ip_addresses)}\n")
        _say("snapshot db-1 before an upgrade")
        snap = run_task(hv.snapshots.create("db-1", "before-upgrade", description="demo", wait=False), "snapshot db-1")
        emit(args, [snap], SNAP_COLUMNS)
        _say("linked clone of web-1 as web-3, started")
        clone = run_task(hv.vms.clone("web-1", "web-3", linked=True, wait=False), "clone web-1 -> web-3")
        run_task(hv.vms.start(clone, wait=False), "start web-3")
        _say("inventory")
        emit(args, sorted(hv.vms.list(), key=lambda v: v.name), VM_COLUMNS)
        used = {h.name: (h.memory_used_mib, h.memory_mib) for h in hv.hosts.list()}
        sys.stdout.write("\n" + "\n".join(f"  {name}: {u} of {t} MiB in use" for name, (u, t) in used.items()) + "\n")
    sys.stdout.write(f"\nExplore further: hvkit --url {url} vm list   (state kept in {state / 'demo'})\n")
    return 0
