"""``hvkit vm ...`` and ``hvkit snapshot ...``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import InvalidSpec
from ..models import VM, DiskSpec, NicSpec, Snapshot, VMSpec
from ._common import emit, open_hv, run_task, to_jsonable

__all__ = ["register"]

VM_COLUMNS: list[tuple[str, Any]] = [
    ("NAME", lambda v: v.name),
    ("ID", lambda v: v.id),
    ("STATE", lambda v: v.power_state),
    ("CPUS", lambda v: v.cpus),
    ("MEMORY_MIB", lambda v: v.memory_mib),
    ("DISK_GIB", lambda v: round(v.disk_bytes / 1024**3, 2)),
    ("HOST", lambda v: v.host),
    ("IPS", lambda v: v.ip_addresses),
]


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    vm = sub.add_parser("vm", help="virtual machines").add_subparsers(dest="verb", required=True, metavar="VERB")
    vm.add_parser("list", parents=[common], help="list VMs").set_defaults(func=vm_list)
    p = vm.add_parser("show", parents=[common], help="show one VM")
    p.add_argument("vm")
    p.set_defaults(func=vm_show)
    p = vm.add_parser("create", parents=[common], help="create a stopped VM")
    p.add_argument("name")
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--memory", type=int, default=1024, metavar="MIB")
    p.add_argument("--disk", action="append", default=[], metavar="GIB[:POOL[:FORMAT]]", help="repeat for more disks")
    p.add_argument("--nic", action="append", default=[], metavar="NETWORK[:MAC]", help="repeat for more NICs")
    p.add_argument("--firmware", choices=["bios", "uefi"], default="bios")
    p.add_argument("--host")
    p.add_argument("--start", action="store_true", help="start it once created")
    p.set_defaults(func=vm_create)
    for verb, helptext in (
        ("start", "power on"),
        ("pause", "pause in memory"),
        ("resume", "resume a paused VM"),
        ("suspend", "save to disk and stop"),
        ("reboot", "reboot"),
    ):
        p = vm.add_parser(verb, parents=[common], help=helptext)
        p.add_argument("vm")
        p.set_defaults(func=vm_power, verb=verb)
    p = vm.add_parser("stop", parents=[common], help="shut down (graceful unless --force)")
    p.add_argument("vm")
    p.add_argument("--force", action="store_true")
    p.add_argument("--timeout", type=float, default=120.0)
    p.set_defaults(func=vm_stop)
    p = vm.add_parser("delete", parents=[common], help="delete a VM and its disks")
    p.add_argument("vm")
    p.add_argument("--keep-disks", action="store_true")
    p.add_argument("--force", action="store_true", help="power it off first if it runs")
    p.set_defaults(func=vm_delete)
    p = vm.add_parser("clone", parents=[common], help="clone a VM")
    p.add_argument("vm")
    p.add_argument("name")
    p.add_argument("--linked", action="store_true")
    p.add_argument("--host")
    p.add_argument("--pool")
    p.set_defaults(func=vm_clone)
    p = vm.add_parser("reconfigure", parents=[common], help="change CPUs and/or memory")
    p.add_argument("vm")
    p.add_argument("--cpus", type=int)
    p.add_argument("--memory", type=int, metavar="MIB")
    p.set_defaults(func=vm_reconfigure)

    snap = sub.add_parser("snapshot", help="snapshots").add_subparsers(dest="verb", required=True, metavar="VERB")
    p = snap.add_parser("list", parents=[common], help="a VM's snapshot tree")
    p.add_argument("vm")
    p.set_defaults(func=snap_list)
    p = snap.add_parser("create", parents=[common], help="take a snapshot")
    p.add_argument("vm")
    p.add_argument("name")
    p.add_argument("--description", default="")
    p.add_argument("--memory", action="store_true", help="include memory (running VM)")
    p.add_argument("--quiesce", action="store_true")
    p.set_defaults(func=snap_create)
    for verb in ("revert", "delete"):
        p = snap.add_parser(verb, parents=[common], help=f"{verb} a snapshot")
        p.add_argument("vm")
        p.add_argument("snapshot", help="name or id")
        if verb == "delete":
            p.add_argument("--children", action="store_true", help="delete its subtree too")
        p.set_defaults(func=snap_revert if verb == "revert" else snap_delete)


def _show_vm(args: argparse.Namespace, vm: VM) -> None:
    if args.json:
        json.dump(to_jsonable(vm), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        emit(args, [vm], VM_COLUMNS)


def vm_list(args: argparse.Namespace) -> int:
    with open_hv(args) as hv:
        emit(args, sorted(hv.vms.list(), key=lambda v: v.name), VM_COLUMNS)
    return 0


def vm_show(args: argparse.Namespace) -> int:
    with open_hv(args) as hv:
        vm = hv.vms.get(args.vm)
    if args.json:
        _show_vm(args, vm)
        return 0
    for key, value in to_jsonable(vm).items():
        sys.stdout.write(f"{key:14} {json.dumps(value) if isinstance(value, list | dict) else value}\n")
    return 0


def parse_disk(text: str) -> DiskSpec:
    size, _, rest = text.partition(":")
    pool, _, fmt = rest.partition(":")
    try:
        gib = float(size)
    except ValueError:
        raise InvalidSpec(f"--disk {text!r}: the size must be a number of GiB, like 10 or 10:default:qcow2") from None
    return DiskSpec(size_gib=gib, pool=pool or None, format=fmt or None)


def parse_nic(text: str) -> NicSpec:
    network, _, mac = text.partition(":")
    if mac and mac.count(":") != 5:  # the MAC's own colons: NETWORK:52:54:00:..
        raise InvalidSpec(f"--nic {text!r}: expected NETWORK or NETWORK:MAC")
    return NicSpec(network=network, mac=mac or None)


def vm_create(args: argparse.Namespace) -> int:
    spec = VMSpec(
        name=args.name,
        cpus=args.cpus,
        memory_mib=args.memory,
        disks=[parse_disk(d) for d in args.disk],
        nics=[parse_nic(n) for n in args.nic],
        firmware=args.firmware,
        host=args.host,
    )
    with open_hv(args) as hv:
        vm = run_task(hv.vms.create(spec, wait=False), f"create {spec.name}")
        if args.start:
            vm = run_task(hv.vms.start(vm, wait=False), f"start {spec.name}")
    _show_vm(args, vm)
    return 0


def vm_power(args: argparse.Namespace) -> int:
    with open_hv(args) as hv:
        vm = run_task(getattr(hv.vms, args.verb)(args.vm, wait=False), f"{args.verb} {args.vm}")
    _show_vm(args, vm)
    return 0


def vm_stop(args: argparse.Namespace) -> int:
    with open_hv(args) as hv:
        vm = run_task(hv.vms.stop(args.vm, force=args.force, timeout=args.timeout, wait=False), f"stop {args.vm}")
    _show_vm(args, vm)
    return 0


def vm_delete(args: argparse.Namespace) -> int:
    with open_hv(args) as hv:
        run_task(hv.vms.delete(args.vm, keep_disks=args.keep_disks, force=args.force, wait=False), f"delete {args.vm}")
    sys.stdout.write(f"deleted {args.vm}\n")
    return 0


def vm_clone(args: argparse.Namespace) -> int:
    with open_hv(args) as hv:
        task = hv.vms.clone(args.vm, args.name, linked=args.linked, host=args.host, pool=args.pool, wait=False)
        vm = run_task(task, f"clone {args.vm} -> {args.name}")
    _show_vm(args, vm)
    return 0


def vm_reconfigure(args: argparse.Namespace) -> int:
    with open_hv(args) as hv:
        vm = run_task(
            hv.vms.reconfigure(args.vm, cpus=args.cpus, memory_mib=args.memory, wait=False), f"reconfigure {args.vm}"
        )
    _show_vm(args, vm)
    return 0


SNAP_COLUMNS: list[tuple[str, Any]] = [
    ("NAME", lambda s: ("* " if s.current else "  ") + s.name),
    ("ID", lambda s: s.id),
    ("PARENT", lambda s: s.parent),
    ("CREATED", lambda s: s.created.isoformat(timespec="seconds") if s.created else None),
    ("MEMORY", lambda s: "yes" if s.memory else ""),
    ("DESCRIPTION", lambda s: s.description),
]


def snap_list(args: argparse.Namespace) -> int:
    with open_hv(args) as hv:
        emit(args, hv.snapshots.list(args.vm), SNAP_COLUMNS)
    return 0


def snap_create(args: argparse.Namespace) -> int:
    with open_hv(args) as hv:
        task = hv.snapshots.create(
            args.vm, args.name, description=args.description, memory=args.memory, quiesce=args.quiesce, wait=False
        )
        snap: Snapshot = run_task(task, f"snapshot {args.vm}")
        emit(args, [snap], SNAP_COLUMNS)
    return 0


def snap_revert(args: argparse.Namespace) -> int:
    with open_hv(args) as hv:
        vm = run_task(hv.snapshots.revert(hv.snapshots.get(args.vm, args.snapshot), wait=False), f"revert {args.vm}")
    _show_vm(args, vm)
    return 0


def snap_delete(args: argparse.Namespace) -> int:
    with open_hv(args) as hv:
        run_task(
            hv.snapshots.delete(hv.snapshots.get(args.vm, args.snapshot), children=args.children, wait=False),
            f"delete snapshot {args.snapshot}",
        )
    sys.stdout.write(f"deleted snapshot {args.snapshot} of {args.vm}\n")
    return 0
