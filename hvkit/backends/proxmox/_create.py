"""Proxmox VM creation: the parameters of a spec, one VM per name (claimed by vmid), undo by vmid."""

from __future__ import annotations

import re
import time
import urllib.parse
import uuid
from typing import Any

import requests  # noqa: F401 - imported before proxmoxer, whose https module calls sys.exit without it

from ...driver import Task
from ...errors import AlreadyExists, HvkitError, InvalidSpec, NotFound
from ...models import (
    DiskBus,
    DiskFormat,
    Firmware,
    VMSpec,
)
from . import _names
from . import _property_strings as ps
from ._errors import is_lock_error, translate
from ._session import (
    BUS_LIMIT,
    CLAIM_WAIT,
    FILE_STORAGES,
    OSTYPE,
    PENDING_WAIT,
    GiB,
    ProxmoxSession,
    ProxmoxTaskSource,
    log,
    retrying,
)


def _create_params(session: ProxmoxSession, spec: VMSpec, node: str) -> dict[str, Any]:
    """Proxmox parameters for ``spec``; raises InvalidSpec before anything is sent."""
    bad_tags = [t for t in spec.tags if not ps.TAG.fullmatch(t)]
    if bad_tags:
        raise InvalidSpec(f"Proxmox tags take letters, digits, '_', '-', '+', '.'; not {bad_tags[0]!r}")
    vendor_name = session.vendor_vm_name(spec.name)
    tags = set(spec.tags) | ({tag} if (tag := _names.name_tag(spec.name, vendor_name)) else set())
    storages = session.storage_types(node)
    params: dict[str, Any] = {
        "name": vendor_name,
        "cores": spec.cpus,
        "sockets": 1,
        "memory": spec.memory_mib,
        "ostype": OSTYPE[spec.guest_os],
        "agent": "1",
        "scsihw": "virtio-scsi-single",
    }
    if spec.notes:
        params["description"] = spec.notes
    if tags:
        params["tags"] = ";".join(sorted(tags))
    counters = dict.fromkeys(BUS_LIMIT, 0)
    first_pool: str | None = None
    for disk in spec.disks:
        if disk.bus not in BUS_LIMIT:
            raise InvalidSpec(f"Proxmox has no {disk.bus.value} disk bus (use virtio, scsi, sata or ide)")
        index = counters[disk.bus] + (
            2 if disk.bus is DiskBus.IDE and spec.cloud_init is not None and counters[disk.bus] >= 2 else 0
        )
        counters[disk.bus] += 1
        if index >= BUS_LIMIT[disk.bus]:
            raise InvalidSpec(f"too many {disk.bus.value} disks for Proxmox (at most {BUS_LIMIT[disk.bus]})")
        key = f"{disk.bus.value}{index}"
        if disk.volume is not None:
            target = (
                disk.pool
                or first_pool
                or next((s for s, e in storages.items() if "images" in str(e.get("content", ""))), None)
            )
            if target is None:
                raise InvalidSpec("no storage with content 'images' to import the volume into")
            params[key] = f"{target}:0,import-from={disk.volume}"
            if disk.format is not None and storages.get(target, {}).get("type") in FILE_STORAGES:
                params[key] += f",format={disk.format.value}"
            first_pool = first_pool or target
            continue
        pool = str(disk.pool)
        if pool not in storages:
            raise InvalidSpec(f"storage {pool!r} is not available on node {node!r}")
        first_pool = first_pool or pool
        size = disk.size_bytes / GiB
        value = f"{pool}:{size:.6g}"
        if storages[pool].get("type") in FILE_STORAGES and disk.format is not None:
            value += f",format={disk.format.value}"
        elif disk.format not in (None, DiskFormat.RAW):
            raise InvalidSpec(f"storage {pool!r} ({storages[pool].get('type')}) takes raw disks only")
        params[key] = value
    if "scsi0" in params or "virtio0" in params:
        params["boot"] = "order=" + ("virtio0" if "virtio0" in params else "scsi0")
    default_pool = first_pool or next((s for s, e in storages.items() if "images" in str(e.get("content", ""))), None)
    for i, nic in enumerate(spec.nics):
        bridge = nic.network.split("/")[-1]
        value = f"{nic.model.value}={nic.mac.upper()}" if nic.mac else nic.model.value
        params[f"net{i}"] = f"{value},bridge={bridge}"
    if spec.firmware is Firmware.UEFI:
        if default_pool is None:
            raise InvalidSpec("UEFI needs a storage for the EFI vars disk")
        params.update(bios="ovmf", machine="q35", efidisk0=f"{default_pool}:1,efitype=4m,pre-enrolled-keys=0")
    ci = spec.cloud_init
    if ci is not None:
        if ci.user_data is not None:
            raise InvalidSpec(
                "cloud-init user_data needs a snippets storage (cicustom), which this backend does not manage; "
                "use username/password/ssh_keys"
            )
        if ci.hostname is not None and ci.hostname != vendor_name:
            raise InvalidSpec(
                "on Proxmox the cloud-init hostname is the VM name; leave hostname unset or equal to the name"
            )
        if default_pool is None:
            raise InvalidSpec("cloud-init needs a storage for its drive")
        params["ide2"] = f"{default_pool}:cloudinit"
        if ci.username:
            params["ciuser"] = ci.username
        if ci.password:
            params["cipassword"] = ci.password
        if ci.ssh_keys:
            params["sshkeys"] = urllib.parse.quote("\n".join(ci.ssh_keys), safe="")
        network = (ci.network_config or "ip=dhcp").strip()
        if not re.fullmatch(r"((ip|gw|ip6|gw6)=[^,\s]+)(,(ip|gw|ip6|gw6)=[^,\s]+)*", network):
            raise InvalidSpec(
                "on Proxmox cloud-init network_config is an ipconfig string "
                "such as 'ip=10.0.0.5/24,gw=10.0.0.1' or 'ip=dhcp'"
            )
        params["ipconfig0"] = network
    return params


def create_vm(session: ProxmoxSession, spec: VMSpec) -> Any:
    node = spec.host or session.pick_node()
    params = _create_params(session, spec, node)

    # The creation token: the SMBIOS UUID of the new VM, written into its own config. Clean-up after a
    # failure removes a vmid only while it still carries this token.
    token = str(uuid.uuid4())
    params.setdefault("smbios1", f"uuid={token}")

    def attempt() -> ProxmoxTaskSource:
        vmid = session.nextid()
        with translate():
            upid = session.api.nodes(node).qemu.post(vmid=vmid, **params)
        return ProxmoxTaskSource(session, node, upid, str(vmid), f"vms.create {spec.name}")

    source = retrying(
        f"vms.create {spec.name}",
        attempt,
        retry_exists=True,
        attempts=session.lock_retries,
        finish=lambda vmid: claim_name(session, node, int(vmid), params["name"], token),
        undo=lambda made: undo_task(session, made, params["name"], token),
    )
    return Task(id=f"create-{spec.name}", operation="vms.create", target=spec.name, source=source)


def claim_name(session: ProxmoxSession, node: str, vmid: int, name: str, token: str | None) -> str:
    deadline = time.monotonic() + PENDING_WAIT  # racing requests start together: a long-running older
    pause = 0.05  # clone of another name must not hold this one up for its whole copy
    while True:
        entries = [e for e in session.resources("vm") if e.get("type") == "qemu" and int(e["vmid"]) < vmid]
        making = [
            e
            for e in entries
            if e.get("lock") in ("create", "clone") and e.get("name") in (None, "", name, f"VM {e['vmid']}")
        ]
        rivals = [e for e in entries if e.get("name") == name and e not in making]
        if rivals:
            _undo_new_vm(session, node, vmid, name, token)
            raise AlreadyExists(
                f"a VM named {name!r} exists already (VM {rivals[0]['vmid']}); "
                f"VM {vmid}, made for this request at the same time, was removed again"
            )
        if not making or time.monotonic() > deadline:
            return str(vmid)
        time.sleep(pause)
        pause = min(pause * 1.5, 1.0)


def undo_task(session: ProxmoxSession, made: ProxmoxTaskSource, name: str, token: str | None) -> None:
    """Undo a create or clone task of a request that failed: wait until PVE's task has ended (it may still
    run when only our reading of it failed), then destroy the VM it made if that is still there."""
    deadline = time.monotonic() + CLAIM_WAIT
    while time.monotonic() < deadline:
        try:
            if made.poll().state.done:
                break
        except HvkitError as exc:
            log.info("reading task %s again after: %s", made.upid, exc)
        time.sleep(0.2)
    _undo_new_vm(session, made.node, int(made._result), name, token)


def _undo_new_vm(session: ProxmoxSession, node: str, vmid: int, name: str, token: str | None) -> None:
    """Destroy VM ``vmid`` that this backend's create or clone made, if it is still there and still that VM.

    Identity: the vmid the task was given, and its creation token (the SMBIOS UUID a create wrote) or,
    for a clone, the name it was given. A vmid now holding any other VM is left alone.
    """
    entry = next((e for e in session.resources("vm") if int(e.get("vmid", -1)) == vmid), None)
    if entry is None:
        return
    with translate():
        config = session.api.nodes(entry["node"]).qemu(vmid).config.get()
    mine = (
        ps.parse(str(config.get("smbios1", "")), "uuid").get("uuid") == token
        if token is not None
        else config.get("name", name) == name
    )
    if not mine:
        log.warning("VM %s is no longer the one this request made; left alone", vmid)
        return
    for _ in range(3):
        try:
            with translate():
                api = session.api.nodes(entry["node"]).qemu(vmid)
                upid = api.delete(purge=1, skiplock=1, **{"destroy-unreferenced-disks": 1})
            session.follow_task(str(entry["node"]), str(upid), "vms.delete", str(vmid)).wait(CLAIM_WAIT)
            log.warning("removed VM %s, made by this request, again", vmid)
            return
        except NotFound:
            return
        except HvkitError as exc:
            if not is_lock_error(exc):
                raise
            time.sleep(0.5)
