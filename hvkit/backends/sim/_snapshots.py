"""Sim snapshots: a tree per VM; disk data kept and restored with qemu-img."""

from __future__ import annotations

import datetime as dt
import functools
import shutil
import uuid
from pathlib import Path
from typing import Any

from ...driver import Rollback, Task, qemuimg
from ...errors import InvalidState
from ...models import (
    VM,
    DiskFormat,
    PowerState,
    Snapshot,
)
from . import _vms
from ._session import EXT, SimSession, epoch_now


def list_snapshots(session: SimSession, vm: VM) -> list[Snapshot]:
    session.enter("list_snapshots")
    with session.world.lock:
        rec = session.vm(vm.id)
        return [_snap_model(session, rec, s) for s in rec["snapshots"].values()]


def list_snapshots_many(session: SimSession, vms: list[VM]) -> dict[str, list[Snapshot]]:
    session.enter("list_snapshots")
    with session.world.lock:
        recs = [session.vm(vm.id) for vm in vms]
        return {rec["id"]: [_snap_model(session, rec, s) for s in rec["snapshots"].values()] for rec in recs}


def _snap_model(session: SimSession, rec: dict[str, Any], s: dict[str, Any]) -> Snapshot:
    created = dt.datetime.fromtimestamp(s["created"], dt.UTC)
    return Snapshot(
        s["id"],
        s["name"],
        rec["id"],
        s["parent"],
        created,
        s["description"],
        s["memory"],
        rec["current"] == s["id"],
    )


def create_snapshot(session: SimSession, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Task:
    session.enter("create_snapshot")

    def effect() -> Snapshot:
        w = session.world
        with w.lock, Rollback() as undo:
            rec = session.vm(vm.id)
            snap_id = w.next_id("snap")
            files: dict[str, str] = {}
            for d in rec["disks"]:
                v = w.volumes[d["volume"]]
                if v["format"] == "qcow2":
                    qemuimg.qemu_img("snapshot", "-c", snap_id, v["path"])
                    undo.push(functools.partial(qemuimg.qemu_img, "snapshot", "-d", snap_id, v["path"]))
                    files[v["id"]] = ""
                else:
                    copy = w.root / "snapshots" / f"{snap_id}-{Path(v['path']).name}"
                    copy.parent.mkdir(exist_ok=True)
                    qemuimg.convert(Path(v["path"]), v["format"], copy, v["format"])
                    undo.push(functools.partial(copy.unlink, missing_ok=True))
                    files[v["id"]] = str(copy)
            snap = {
                "id": snap_id,
                "name": name,
                "parent": rec["current"],
                "created": epoch_now(),
                "description": description,
                "memory": memory,
                "files": files,
                "slots": {d["volume"]: d["name"] for d in rec["disks"]},
                "state": rec["state"] if memory else PowerState.STOPPED.value,
                "cpus": rec["cpus"],
                "memory_mib": rec["memory_mib"],
            }
            rec["snapshots"][snap_id] = snap
            rec["current"] = snap_id
            session.changed(rec, "snapshot-created")
            return _snap_model(session, rec, snap)

    return session.task("create_snapshot", vm.name, effect)


def revert_snapshot(session: SimSession, vm: VM, snapshot: Snapshot) -> Task:
    session.enter("revert_snapshot")

    def effect() -> None:
        w = session.world
        with w.lock:
            rec = session.vm(vm.id)
            snap = rec["snapshots"][snapshot.id]
            for vol_id in list(snap["files"]):
                _revert_disk(session, rec, snap, vol_id)
            rec["cpus"], rec["memory_mib"] = snap["cpus"], snap["memory_mib"]
            rec["current"] = snap["id"]
            if rec["state"] != snap["state"]:
                if snap["state"] == PowerState.RUNNING.value:
                    rec["ips"] = _vms.lease(session, rec)
                session.set_state(rec, PowerState(snap["state"]), "reverted")
            else:
                session.changed(rec, "reverted")

    return session.task("revert_snapshot", vm.name, effect)


def _revert_disk(session: SimSession, rec: dict[str, Any], snap: dict[str, Any], vol_id: str) -> None:
    """Put one disk back to ``snap``. A volume that backs others (a base the VM moved off when it was
    linked-cloned) is never written: the snapshot is restored into a private copy the disk moves onto."""
    w = session.world
    v = w.volumes[vol_id]
    copy = snap["files"][vol_id]
    slot = snap.get("slots", {}).get(vol_id)
    disk = next((d for d in rec["disks"] if d["name"] == slot or d["volume"] == vol_id), None)
    if disk is None:
        raise InvalidState(f"VM {rec['name']!r} no longer has the disk snapshot {snap['name']!r} was taken of")
    if any(o.get("backing") == vol_id for o in w.volumes.values()):
        name = f"{rec['id']}-{disk['name']}-{uuid.uuid4().hex[:6]}"
        if copy:
            target = session.new_volume(v["pool"], name, v["capacity"], DiskFormat(v["format"]))
            qemuimg.convert(Path(copy), v["format"], Path(target["path"]), v["format"])
        else:
            ext = EXT.get(v["format"], v["format"])
            path = w.pool_dir(v["pool"]) / f"{name}.{ext}"
            shutil.copyfile(v["path"], path)  # the image with its internal snapshots
            target = {**v, "id": f"{v['pool']}/{path.name}", "name": path.name, "path": str(path)}
            w.volumes[target["id"]] = target
            qemuimg.qemu_img("snapshot", "-a", snap["id"], str(path))
        snap["files"] = {(target["id"] if k == vol_id else k): val for k, val in snap["files"].items()}
        snap.setdefault("slots", {})[target["id"]] = disk["name"]
    else:
        target = v
        if copy:
            qemuimg.convert(Path(copy), v["format"], Path(v["path"]), v["format"])
        else:
            qemuimg.qemu_img("snapshot", "-a", snap["id"], v["path"])
    previous, disk["volume"] = disk["volume"], target["id"]
    if previous != target["id"]:
        session.drop_if_unused(previous)


def delete_snapshot(session: SimSession, vm: VM, snapshot: Snapshot, children: bool) -> Task:
    session.enter("delete_snapshot")

    def effect() -> None:
        with session.world.lock:
            rec = session.vm(vm.id)
            snaps = rec["snapshots"]
            target = snaps[snapshot.id]
            doomed = [target]
            if children:
                frontier = [target["id"]]
                while frontier:
                    kids = [s for s in snaps.values() if s["parent"] in frontier]
                    doomed += kids
                    frontier = [k["id"] for k in kids]
            for s in doomed:
                drop_snapshot_data(session, rec, s)
                del snaps[s["id"]]
            for s in snaps.values():
                if s["parent"] == target["id"]:
                    s["parent"] = target["parent"]
            if rec["current"] not in snaps:
                rec["current"] = target["parent"]
            session.changed(rec, "snapshot-deleted")

    return session.task("delete_snapshot", vm.name, effect)


def drop_snapshot_data(session: SimSession, rec: dict[str, Any], snap: dict[str, Any]) -> None:
    for vol_id, copy in snap["files"].items():
        if copy:
            Path(copy).unlink(missing_ok=True)
        elif vol_id in session.world.volumes:
            qemuimg.qemu_img("snapshot", "-d", snap["id"], session.world.volumes[vol_id]["path"])
