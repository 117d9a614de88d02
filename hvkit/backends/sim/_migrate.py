"""Sim clones and moves: full and linked clones, host and storage migration."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from ...driver import Rollback, Task
from ...errors import AlreadyExists, InsufficientCapacity, InvalidState
from ...models import (
    VM,
    DiskFormat,
    PowerState,
)
from ._session import SimSession, epoch_now


def clone_vm(session: SimSession, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> Task:
    session.enter("clone_vm")

    def effect() -> VM:
        w = session.world
        with w.lock, Rollback() as undo:
            src = session.vm(vm.id)
            if src["state"] not in (PowerState.STOPPED.value, PowerState.SUSPENDED.value) and not linked:
                pass  # a running VM clones crash-consistently, as on most vendors
            if any(o["name"] == name for o in w.vms.values()):
                raise AlreadyExists(f"a VM named {name!r} exists already")
            new_id = w.next_id("vm")
            disks = []
            for d in src["disks"]:
                sv = w.volumes[d["volume"]]
                target_pool = pool or sv["pool"]
                if linked:
                    vol = session.new_volume(
                        target_pool, f"{new_id}-{d['name']}", sv["capacity"], DiskFormat.QCOW2, backing=sv
                    )
                    undo.push(functools.partial(session.remove_volume, vol), f"delete {vol['id']}")
                else:
                    vol = session.copy_volume(sv, target_pool, f"{new_id}-{d['name']}", undo)
                disks.append({**d, "volume": vol["id"]})
            w.faults.check("clone_vm", stage="define")
            used = {n["mac"] for o in w.vms.values() for n in o["nics"]}
            nics = []
            for n in src["nics"]:
                mac = session.new_mac(used)
                used.add(mac)
                nics.append({**n, "mac": mac})
            rec = {
                **{k: v for k, v in src.items() if k not in ("snapshots", "current", "bases")},
                "id": new_id,
                "name": name,
                "uuid": str(uuid.uuid4()),
                "state": PowerState.STOPPED.value,
                "disks": disks,
                "nics": nics,
                "host": host or src["host"],
                "ips": [],
                "snapshots": {},
                "current": None,
                "template": False,
                "state_since": epoch_now(),
                "run_seconds": 0.0,
            }
            if linked:
                _move_onto_overlays(session, src, undo)
            w.vms[new_id] = rec
            session.changed(rec, "defined")
            return session.vm_model(rec)

    return session.task("clone_vm", name, effect)


def _move_onto_overlays(session: SimSession, rec: dict[str, Any], undo: Rollback) -> None:
    """After a linked clone: the source writes into its own new overlay; the shared base never changes again.

    The bases it moved off stay the source's (``rec["bases"]``): deleted with it once no clone needs them.
    """
    token = uuid.uuid4().hex[:6]
    moves = []
    for d in rec["disks"]:
        base = session.world.volumes[d["volume"]]
        overlay = session.new_volume(
            base["pool"], f"{rec['id']}-{d['name']}-{token}", base["capacity"], DiskFormat.QCOW2, backing=base
        )
        undo.push(functools.partial(session.remove_volume, overlay), f"delete {overlay['id']}")
        moves.append((d, base["id"], overlay["id"]))
    for d, base_id, overlay_id in moves:
        d["volume"] = overlay_id
        rec.setdefault("bases", []).append(base_id)


def migrate_vm(session: SimSession, vm: VM, host: str | None, pool: str | None, live: bool) -> Task:
    session.enter("migrate_vm")

    def effect() -> VM:
        w = session.world
        with w.lock:
            rec = session.vm(vm.id)
            running = rec["state"] in (PowerState.RUNNING.value, PowerState.PAUSED.value)
            if running and not live:
                raise InvalidState(f"VM {rec['name']!r} is {rec['state']}; pass live=True or stop it")
            if host is not None:
                target = w.hosts[session.host_id(host)]
                if target["maintenance"]:
                    raise InvalidState(f"host {target['name']!r} is in maintenance mode")
                if running:
                    used = session.host_usage()[target["id"]][1]
                    if used + rec["memory_mib"] > target["memory_mib"]:
                        raise InsufficientCapacity(
                            f"host {target['name']!r} has {target['memory_mib'] - used} MiB free; "
                            f"VM {rec['name']!r} needs {rec['memory_mib']}"
                        )
            if pool is not None:
                _move_disks(session, rec, pool)
            if host is not None:
                rec["host"] = target["id"]
            session.changed(rec, "migrated")
            return session.vm_model(rec)

    return session.task("migrate_vm", vm.name, effect)


def _move_disks(session: SimSession, rec: dict[str, Any], pool: str) -> None:
    """Copy the VM's disks into ``pool``, then switch to the copies and drop the originals.

    Refuses disks that back linked clones (their clones would lose their base). A failure at any step
    removes the copies made so far and leaves the VM on its original disks.
    """
    w = session.world
    todo = [(d, w.volumes[d["volume"]]) for d in rec["disks"] if w.volumes[d["volume"]]["pool"] != pool]
    for _, sv in todo:
        users = [v["id"] for v in w.volumes.values() if v.get("backing") == sv["id"]]
        if users:
            raise InvalidState(
                f"volume {sv['name']!r} of VM {rec['name']!r} backs linked clones ({', '.join(users)}); "
                "moving it would break them: delete or fully clone them first"
            )
    with Rollback() as undo:
        copies = [(d, sv, session.copy_volume(sv, pool, sv["name"], undo)) for d, sv in todo]
        w.faults.check("migrate_vm", stage="switch")
    for d, _, nv in copies:
        d["volume"] = nv["id"]
    for _, sv, _ in copies:
        kept = any(
            sv["id"] in (*(d["volume"] for d in o["disks"]), *o.get("bases", ()))
            or any(sv["id"] in snap["files"] for snap in o["snapshots"].values())
            for o in w.vms.values()
        )
        if not kept:  # still used by another disk, as a base, or by a snapshot: it stays
            session.remove_volume(sv)
