"""Proxmox snapshots: list, create, rollback, delete."""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests  # noqa: F401 - imported before proxmoxer, whose https module calls sys.exit without it

from ...driver import Task
from ...errors import AlreadyExists
from ...models import (
    VM,
    Snapshot,
)
from . import _names
from ._errors import translate
from ._locks import retry_locked
from ._session import (
    ProxmoxSession,
)


def list_snapshots(session: ProxmoxSession, vm: VM) -> list[Snapshot]:
    with translate():
        entries = session.qemu(vm).snapshot.get()
    current_parent = next((e.get("parent") for e in entries if e.get("name") == "current"), None)
    return [
        Snapshot(
            id=e["name"],
            name=_names.split_description(e["name"], str(e.get("description", "")))[0],
            vm=vm.id,
            parent=e.get("parent"),
            created=dt.datetime.fromtimestamp(int(e["snaptime"]), dt.UTC) if e.get("snaptime") else None,
            description=_names.split_description(e["name"], str(e.get("description", "")))[1],
            memory=bool(e.get("vmstate")),
            current=e["name"] == current_parent,
        )
        for e in entries
        if e.get("name") != "current"
    ]


def create_snapshot(session: ProxmoxSession, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Any:
    snap_id = _names.snapshot_id(name)
    taken = next((s for s in list_snapshots(session, vm) if s.id == snap_id), None)
    if taken is not None:
        raise AlreadyExists(
            f"snapshot name {name!r} becomes the Proxmox snapshot id {snap_id!r}, which snapshot {taken.name!r} "
            f"of VM {vm.name!r} has already"
        )
    params: dict[str, Any] = {"snapname": snap_id}
    if stored := _names.join_description(name, snap_id, description):
        params["description"] = stored

    if memory:
        params["vmstate"] = 1

    def call() -> str:
        with translate():
            return str(session.qemu(vm).snapshot.post(**params))

    upid = session.retry(call, f"snapshots.create {vm.name}")
    # the result: the snapshot's id (a PVE snapshot is known by its name)
    return session.follow_task(str(vm.host), upid, "snapshots.create", vm.name, params["snapname"])


def revert_snapshot(session: ProxmoxSession, vm: VM, snapshot: Snapshot) -> Any:
    def call() -> str:
        with translate():
            return str(session.qemu(vm).snapshot(snapshot.id).rollback.post())

    upid = session.retry(call, f"snapshots.revert {vm.name}")
    return session.follow_task(str(vm.host), upid, "snapshots.revert", vm.name)


def delete_snapshot(session: ProxmoxSession, vm: VM, snapshot: Snapshot, children: bool) -> Any:
    order = [snapshot.id]
    if children:
        snaps = list_snapshots(session, vm)
        kids: dict[str | None, list[str]] = {}
        for s in snaps:
            kids.setdefault(s.parent, []).append(s.id)
        todo, order = [snapshot.id], []
        while todo:
            sid = todo.pop()
            order.append(sid)
            todo.extend(kids.get(sid, []))
        order.reverse()  # leaves first

    def run() -> None:
        for sid in order:

            def call(sid: str = sid) -> str:
                with translate():
                    return str(session.qemu(vm).snapshot(sid).delete())

            upid = session.retry(call, f"snapshots.delete {vm.name}")
            session.follow_task(str(vm.host), upid, "snapshots.delete", vm.name).wait()

    if len(order) == 1:

        def one() -> str:
            with translate():
                return str(session.qemu(vm).snapshot(snapshot.id).delete())

        return session.follow_task(
            str(vm.host), retry_locked(one, f"snapshots.delete {vm.name}"), "snapshots.delete", vm.name
        )
    return Task.in_thread("snapshots.delete", vm.name, run)
