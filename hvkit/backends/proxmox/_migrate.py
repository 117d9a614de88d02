"""Proxmox clones (full and linked), node migration and disk moves."""

from __future__ import annotations

from typing import Any

import requests  # noqa: F401 - imported before proxmoxer, whose https module calls sys.exit without it

from ...driver import Task
from ...errors import InvalidSpec, InvalidState
from ...models import (
    VM,
    PowerState,
)
from . import _create, _names, _vms
from ._errors import translate
from ._session import (
    ProxmoxSession,
    ProxmoxTaskSource,
    retrying,
)


def clone_vm(session: ProxmoxSession, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> Any:
    # PVE links clones to templates only: a linked clone of any other VM (running, with snapshots) is a full
    # copy of its current state, the one way PVE clones it (see docs/portability.md)
    linked = linked and vm.template
    if linked and pool is not None:
        raise InvalidSpec("a linked clone stays on its template's storage; pass pool only for a full clone")
    vendor_name = session.vendor_vm_name(name)
    node = str(vm.host)
    params: dict[str, Any] = {"name": vendor_name, "full": 0 if linked else 1}
    # PVE copies the source's tags: the clone's keep the user's name of the clone, not of its source
    name_tag = _names.name_tag(name, vendor_name)
    retag = name_tag is not None or _names.vm_name(vm.name) != vm.name
    tags = ";".join(sorted({*vm.tags, *([name_tag] if name_tag else [])}))

    if host is not None and host != node:
        params["target"] = host
    if pool is not None:
        params["storage"] = pool
    # A non-template source is locked ("clone") for the whole copy: clones of it go one at a time here.
    # Clones of a template run in parallel; their short lock collisions are retried.
    serial = session.vm_locks.get(vm.id) if not vm.template else None

    def attempt() -> ProxmoxTaskSource:
        with session.vm_locks.get(f"submit-{vm.id}"):
            newid = session.nextid()
            with translate():
                upid = session.api.nodes(node).qemu(vm.id).clone.post(newid=newid, **params)
        return ProxmoxTaskSource(session, node, upid, str(newid), f"vms.clone {vm.name} -> {name}")

    def run() -> ProxmoxTaskSource:
        return attempt()

    target = host or node
    if serial is not None:
        serial.acquire()
    try:
        source = retrying(
            f"vms.clone {name}",
            run,
            retry_exists=True,
            attempts=session.lock_retries,
            finish=lambda newid: _create.claim_name(session, target, int(newid), params["name"], None),
            undo=lambda made: _create.undo_task(session, made, params["name"], None),
        )
        if serial is not None:
            source.join()
    finally:
        if serial is not None:
            serial.release()
    task = Task(id=f"clone-{name}", operation="vms.clone", target=name, source=source)
    if not retag:
        return task

    def set_tags(newid: Any) -> Any:
        target = host if host is not None else node
        with translate():
            session.api.nodes(target).qemu(newid).config.put(**({"tags": tags} if tags else {"delete": "tags"}))
        return newid

    return Task.in_thread("vms.clone", name, lambda: task, lambda t: set_tags(t.wait()))


def migrate_vm(session: ProxmoxSession, vm: VM, host: str | None, pool: str | None, live: bool) -> Any:
    if host is None:
        return _move_disks(session, vm, str(pool))
    running = vm.power_state is not PowerState.STOPPED
    if running and not live:
        raise InvalidSpec(
            f"VM {vm.name!r} is running; Proxmox moves a running VM live only (pass live=True or stop it)"
        )
    params: dict[str, Any] = {"target": host, "online": 1 if running else 0, "with-local-disks": 1}
    if pool is not None:
        params["targetstorage"] = pool

    def call() -> str:
        with translate():
            return str(session.qemu(vm).migrate.post(**params))

    upid = session.retry(call, f"vms.migrate {vm.name}")
    return session.follow_task(str(vm.host), upid, "vms.migrate", vm.name, vm.id)


def _move_disks(session: ProxmoxSession, vm: VM, pool: str) -> Task:
    """Move every disk of ``vm`` to storage ``pool`` on its node, one PVE task per disk.

    A template's disks that linked clones are based on are not moved (PVE would keep the old base for
    the clones, owned by no VM any more): InvalidState names the clones.
    """
    full = _vms.get_vm(session, vm.id)
    keys = [d.name for d in full.disks if d.pool != pool and d.name != "efidisk0"]
    clones = linked_clones(session, full, keys)
    if clones:
        raise InvalidState(
            f"VM {vm.name!r} is the base of linked clones ({', '.join(clones)}); moving its disks would "
            "leave their base behind: delete them or make full clones first"
        )

    def run() -> str:
        for key in keys:

            def call(key: str = key) -> str:
                with translate():
                    return str(session.qemu(vm).move_disk.post(disk=key, storage=pool, delete=1))

            upid = session.retry(call, f"vms.migrate {vm.name} {key}")
            session.follow_task(str(vm.host), upid, "vms.migrate", vm.name).wait()
        return vm.id

    return Task.in_thread("vms.migrate", vm.name, run)


def linked_clones(session: ProxmoxSession, vm: VM, keys: list[str]) -> list[str]:
    """VM ids of the linked clones based on disks ``keys`` of ``vm`` (their volids name the base:
    ``local:100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2``, ``local-lvm:base-100-disk-0/vm-101-disk-0``)."""
    bases = [str(d.volume) for d in vm.disks if d.name in keys and ":base-" in str(d.volume).replace("/", ":")]
    found: set[str] = set()
    for storage in {b.split(":", 1)[0] for b in bases}:
        with translate():
            content = session.api.nodes(vm.host).storage(storage).content.get(content="images")
        for entry in content:
            volid = str(entry.get("volid", ""))
            if any(volid.startswith(base + "/") for base in bases):
                found.add(str(entry.get("vmid", volid)))
    return sorted(found)
