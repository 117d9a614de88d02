"""Sim VMs: list, create, delete, power, reconfigure, templates; host maintenance and guest faults for tests."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from typing import Any

from ...driver import Rollback, Task
from ...errors import AlreadyExists, InsufficientCapacity, InvalidSpec, InvalidState, NotFound, Timeout
from ...models import (
    VM,
    PowerState,
    VMSpec,
)
from . import _snapshots
from ._session import SimSession, epoch_now


def list_vms(session: SimSession, detail: bool = False) -> list[VM]:
    """Every VM in full (the model is in memory: ``detail`` changes nothing)."""
    session.enter("list_vms")
    with session.world.lock:
        return [session.vm_model(vm) for vm in session.world.vms.values()]


def get_vm(session: SimSession, ref: str) -> VM:
    session.enter("get_vm")
    with session.world.lock:
        if ref in session.world.vms:
            return session.vm_model(session.world.vms[ref])
        for vm in session.world.vms.values():
            if ref in (vm["name"], vm["uuid"]):
                return session.vm_model(vm)
    raise NotFound(f"no VM {ref!r} on sim://{session.world.name}")


def create_vm(session: SimSession, spec: VMSpec) -> Task:
    session.enter("create_vm")
    return session.task("create_vm", spec.name, lambda: _create(session, spec))


def _create(session: SimSession, spec: VMSpec) -> VM:
    w = session.world
    with w.lock, Rollback() as undo:
        if any(vm["name"] == spec.name for vm in w.vms.values()):
            raise AlreadyExists(f"a VM named {spec.name!r} exists already")
        vm_id = w.next_id("vm")
        disks = []
        for i, d in enumerate(spec.disks):
            name = d.name or f"disk{i}"
            if d.volume is not None:
                if d.volume not in w.volumes:
                    raise NotFound(f"no volume {d.volume!r}")
                volume_id = d.volume
            else:
                assert d.pool is not None and d.format is not None  # filled in by the core
                vol = session.new_volume(d.pool, f"{vm_id}-{name}", d.size_bytes, d.format)
                undo.push(functools.partial(session.remove_volume, vol), f"delete {vol['id']}")
                volume_id = vol["id"]
            disks.append({"name": name, "volume": volume_id, "bus": d.bus.value})
        w.faults.check("create_vm", stage="define")
        nics = []
        used_macs = {n["mac"] for vm in w.vms.values() for n in vm["nics"]}
        for i, n in enumerate(spec.nics):
            mac = n.mac or session.new_mac(used_macs)
            if n.mac and n.mac in used_macs:
                raise AlreadyExists(f"MAC address {n.mac} is used by another VM")
            used_macs.add(mac)
            nics.append({"mac": mac, "network": n.network, "model": n.model.value, "name": f"nic{i}"})
        host = (spec.host and session.host_id(spec.host)) or session.least_loaded_host()
        load = float(spec.extra.get("sim.load", 0.5))
        if not 0.0 <= load <= 1.0:
            raise InvalidSpec(f"sim.load must be between 0 and 1, got {load}")
        ci = spec.cloud_init
        vm = {
            "id": vm_id,
            "name": spec.name,
            "uuid": str(uuid.uuid4()),
            "state": PowerState.STOPPED.value,
            "cpus": spec.cpus,
            "memory_mib": spec.memory_mib,
            "disks": disks,
            "nics": nics,
            "host": host,
            "firmware": spec.firmware.value,
            "guest_os": spec.guest_os.value,
            "notes": spec.notes,
            "tags": sorted(spec.tags),
            "template": bool(spec.extra.get("template", False)),
            "ips": [],
            "load": load,
            "snapshots": {},
            "current": None,
            "state_since": epoch_now(),
            "run_seconds": 0.0,
            "cloud_init": None
            if ci is None
            else {
                "hostname": ci.hostname,
                "username": ci.username,
                "ssh_keys": len(ci.ssh_keys),
                "password_set": ci.password is not None,
            },
        }
        w.vms[vm_id] = vm
        session.changed(vm, "defined")
        return session.vm_model(vm)


def delete_vm(session: SimSession, vm: VM, keep_disks: bool) -> Task:
    session.enter("delete_vm")

    def effect() -> None:
        with session.world.lock:
            rec = session.vm(vm.id)
            own = [d["volume"] for d in rec["disks"]]
            # the bases it moved off at linked clones, and the volumes only its snapshots still use
            kept = [*rec.get("bases", ()), *(v for s in rec["snapshots"].values() for v in s["files"])]
            own += [v for v in dict.fromkeys(kept) if v not in own]
            clones = [v["id"] for v in session.world.volumes.values() if v.get("backing") in own and v["id"] not in own]
            if clones and not keep_disks:
                raise InvalidState(
                    f"VM {rec['name']!r} has linked clones using its disks ({', '.join(clones)}); delete them first"
                )
            for snap in list(rec["snapshots"].values()):
                _snapshots.drop_snapshot_data(session, rec, snap)
            if not keep_disks:
                for vol_id in own:
                    shared = [
                        o["name"]
                        for o in session.world.vms.values()
                        if o["id"] != rec["id"] and any(d["volume"] == vol_id for d in o["disks"])
                    ]
                    if not shared and vol_id in session.world.volumes:
                        session.remove_volume(session.world.volumes[vol_id])
            del session.world.vms[rec["id"]]
            session.changed(rec, "undefined")

    return session.task("delete_vm", vm.name, effect)


def _power(
    session: SimSession,
    operation: str,
    vm: VM,
    allowed: set[PowerState],
    target: PowerState,
    event: str,
    extra: Callable[[dict[str, Any]], None] | None = None,
) -> Task:
    session.enter(operation)

    def effect() -> VM:
        with session.world.lock:
            rec = session.vm(vm.id)
            if PowerState(rec["state"]) not in allowed:
                raise InvalidState(f"VM {rec['name']!r} is {rec['state']}")
            if extra is not None:
                extra(rec)
            session.set_state(rec, target, event)
            return session.vm_model(rec)

    return session.task(operation, vm.name, effect)


def start_vm(session: SimSession, vm: VM) -> Task:
    def boot(rec: dict[str, Any]) -> None:
        host = session.world.hosts[rec["host"]]
        if host["maintenance"]:
            raise InvalidState(f"host {host['name']!r} is in maintenance mode")
        used = session.host_usage()[rec["host"]][1]
        if used + rec["memory_mib"] > host["memory_mib"]:
            raise InsufficientCapacity(
                f"host {host['name']!r} has {host['memory_mib'] - used} MiB free; "
                f"VM {rec['name']!r} needs {rec['memory_mib']}"
            )
        if rec.get("cloud_init") and rec["state"] == PowerState.STOPPED.value:
            session.log(rec, f"cloud-init: hostname {rec['cloud_init']['hostname'] or rec['name']}")
        rec["ips"] = lease(session, rec)

    return _power(
        session,
        "start_vm",
        vm,
        {PowerState.STOPPED, PowerState.SUSPENDED, PowerState.CRASHED},
        PowerState.RUNNING,
        "started",
        boot,
    )


def lease(session: SimSession, rec: dict[str, Any]) -> list[str]:
    ips = []
    taken = {ip for vm in session.world.vms.values() for ip in vm["ips"]}
    for nic in rec["nics"]:
        subnet = session.world.networks[nic["network"]]["subnet"] if nic["network"] in session.world.networks else None
        if subnet is None:
            continue
        for last in range(100, 255):
            ip = f"{subnet}.{last}"
            if ip not in taken:
                taken.add(ip)
                ips.append(ip)
                break
    return ips


def stop_vm(session: SimSession, vm: VM, force: bool, timeout: float) -> Task:
    if not force:
        with session.world.lock:
            rec = session.vm(vm.id)
            if (rec["load"] >= 0 and rec.get("ignore_acpi")) or vm.extra.get("sim.ignore_acpi"):
                session.enter("stop_vm")
                time.sleep(timeout)
                raise Timeout(f"VM {vm.name!r} did not shut down within {timeout:g} s (the guest ignored the request)")
    return _power(
        session,
        "stop_vm",
        vm,
        {PowerState.RUNNING, PowerState.PAUSED, PowerState.CRASHED, PowerState.SUSPENDED, PowerState.UNKNOWN},
        PowerState.STOPPED,
        "stopped",
    )


def reboot_vm(session: SimSession, vm: VM, force: bool) -> Task:
    return _power(session, "reboot_vm", vm, {PowerState.RUNNING}, PowerState.RUNNING, "rebooted")


def pause_vm(session: SimSession, vm: VM) -> Task:
    return _power(session, "pause_vm", vm, {PowerState.RUNNING}, PowerState.PAUSED, "paused")


def resume_vm(session: SimSession, vm: VM) -> Task:
    return _power(session, "resume_vm", vm, {PowerState.PAUSED}, PowerState.RUNNING, "resumed")


def suspend_vm(session: SimSession, vm: VM) -> Task:
    return _power(session, "suspend_vm", vm, {PowerState.RUNNING, PowerState.PAUSED}, PowerState.SUSPENDED, "suspended")


def set_guest_ignores_shutdown(session: SimSession, vm: VM, ignore: bool = True) -> None:
    """Make the simulated guest ignore graceful shutdown requests (for timeout tests)."""
    with session.world.lock:
        session.vm(vm.id)["ignore_acpi"] = ignore


def crash(session: SimSession, vm: VM) -> None:
    """Simulate a guest crash."""
    with session.world.lock:
        rec = session.vm(vm.id)
        session.set_state(rec, PowerState.CRASHED, "crashed")


def set_maintenance(session: SimSession, host: str, on: bool = True) -> None:
    with session.world.lock:
        session.world.hosts[session.host_id(host)]["maintenance"] = on
        session.world.save()


def reconfigure_vm(session: SimSession, vm: VM, cpus: int | None, memory_mib: int | None) -> Task:
    session.enter("reconfigure_vm")

    def effect() -> VM:
        with session.world.lock:
            rec = session.vm(vm.id)
            if rec["state"] not in (PowerState.STOPPED.value, PowerState.CRASHED.value):
                if (cpus or rec["cpus"]) < rec["cpus"] or (memory_mib or rec["memory_mib"]) < rec["memory_mib"]:
                    raise InvalidState(
                        f"VM {rec['name']!r} is {rec['state']}: CPUs and memory can only grow while it runs"
                    )
                host = session.world.hosts[rec["host"]]
                if cpus and cpus > host["threads"]:
                    raise InvalidState(f"host {host['name']!r} has {host['threads']} CPUs; {cpus} asked")
            rec["cpus"] = cpus or rec["cpus"]
            rec["memory_mib"] = memory_mib or rec["memory_mib"]
            session.changed(rec, "reconfigured")
            return session.vm_model(rec)

    return session.task("reconfigure_vm", vm.name, effect)


def mark_template(session: SimSession, vm: VM) -> Task:
    session.enter("mark_template")

    def effect() -> VM:
        with session.world.lock:
            rec = session.vm(vm.id)
            rec["template"] = True
            session.changed(rec, "templated")
            return session.vm_model(rec)

    return session.task("mark_template", vm.name, effect)
